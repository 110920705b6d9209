"""`confctl capacity --measure`: the measured run with a live display, then the report."""
from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from harness.cases import Case
from harness.measured_run import RunConfig, RunResult, measure
from harness.report import write_report
from harness.wan import WanError, remove_leftovers, require_root
from harness.wan_plan import SelectionError
from rooms.ids import PlanKind, SiteId
from rooms.topology import Topology, demo_topology_path, load_topology_file


def cases_for(topo: Topology, select: str, profiles: str, plans: str) -> list[Case]:
    """Each selected site's uplink; a prefecture brings its first county's uplink (the other class)."""
    sites = [s.strip() for s in select.split(",") if s.strip()]
    unknown = [s for s in sites if s not in topo.sites]
    if unknown:
        raise SelectionError(f"unknown sites: {', '.join(unknown)}")
    if topo.root in sites:
        raise SelectionError(f"{topo.root} is the root: it has no uplink; select prefectures or counties")
    links: list[SiteId] = []
    for s in sites:
        links.append(SiteId(s))
        counties = [c for c in topo.children[SiteId(s)] if topo.sites[c].level == "county"]
        if counties:
            links.append(counties[0])
    profile_names = [p.strip() for p in profiles.split(",") if p.strip()]
    for p in profile_names:
        prof = topo.profile(p)
        if prof is None or not prof.has_video:
            raise SelectionError(f"profile {p!r}: one of {[x.name for x in topo.profiles if x.has_video]}")
    try:
        kinds = [PlanKind(p.strip()) for p in plans.split(",") if p.strip()]
    except ValueError:
        raise SelectionError(f"plans: cascade and/or central, not {plans!r}") from None
    return [Case(link, p, k) for link in dict.fromkeys(links) for p in profile_names for k in kinds]


def measure_capacity(args: argparse.Namespace) -> None:
    console = Console(stderr=True)
    if args.cleanup:
        require_root()
        gone = remove_leftovers()
        print(f"removed {len(gone)} namespace(s) left by earlier runs")
        return
    topo_file = Path(args.topology) if args.topology else demo_topology_path()
    topo = load_topology_file(topo_file)
    if not 0 < args.scale <= 1:
        raise SelectionError(f"--scale {args.scale}: give a factor above 0 and at most 1 (e.g. 0.1)")
    cases = cases_for(topo, args.select, args.profiles, args.plans)
    require_root()  # before anything is encoded or started: one clear line
    cfg = RunConfig(topo, cases, scale=args.scale, scale_above_kbps=int(args.scale_above * 1000),
                    window_s=args.window)
    result = RunResult({})
    command = " ".join(["confctl capacity --measure", *(shlex.quote(a) for a in sys.argv[2:] if a != "--measure")])
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))  # like Ctrl-C: tear down
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task(f"{len(cases)} cases", total=1.0)

        def progress(what: str, done: float) -> None:
            bar.update(task, description=what, completed=done)
            if not console.is_terminal:  # a log or CI: one line per step instead of a redrawn bar
                console.print(f"[{100 * done:3.0f} %] {what}")
        try:
            asyncio.run(measure(cfg, topo_file, progress, result))
        except KeyboardInterrupt:
            console.print("[red]interrupted: the emulated network is torn down; the report is marked partial")
        except WanError:
            raise
    if result.cases:
        files = write_report(result.to_dict(), Path(args.out), command)
        print("\n".join(str(f) for f in files))
    for c in result.cases:
        m = c["model"]
        print(f"{c['case']:<32} model admits {m['admitted']}, link carries {m['carried']}; measured "
              f"{c.get('measured', '–')}")
    if result.partial:
        sys.exit(1)


__all__ = ["measure_capacity", "cases_for", "WanError"]
