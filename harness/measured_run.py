"""The measured run: real control plane, media node processes and synthetic sites over the emulated WAN.

For each case (link × profile × plan, harness/cases.py) it books 1, 2, ... identical sessions
through the API (past admission with an admin override, recorded on each session), runs them
with one synthetic-site process per site inside the site's namespace (harness/site_agent.py),
measures every stream over a window and the link's bytes from the kernel, and ramps past what
the model says the link carries until a step fails (loss >= 1 % or a freeze). A `rich` display
shows where it is. Everything is torn down afterwards, also on failure and Ctrl-C.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse

import aiohttp
from aiohttp import web

from harness.cases import Case, link_class, measured_capacity, model, session_sites, step_passes
from harness.wan import Wan, remove_leftovers, require_root
from harness.wan_plan import HARNESS_ADDR, plan_wan
from media.synthetic import DEFAULT_CACHE, audio_clip, video_clip
from rooms.ids import SiteId
from rooms.topology import Topology

log = logging.getLogger("harness.run")
CONFCTL = str(Path(sys.executable).parent / "confctl")
NODE_PORT = 9000


@dataclass
class RunConfig:
    topology: Topology
    cases: list[Case]
    scale: float = 1.0
    scale_above_kbps: int = 0
    window_s: float = 10.0
    warmup_s: float = 20.0
    beyond: int = 1  # steps past the model's carried count (the ramp stops at the first failure after it)
    max_sessions: int = 5  # a scaled link is scaled further until the model carries at most this many:
    # past ~6 concurrent 3-site sessions this 2-core machine, not the link, is what fails
    cache: Path = DEFAULT_CACHE
    max_steps: int | None = None  # stop the ramp here (a test that needs one session, not the ramp)


@dataclass
class RunResult:
    config: dict[str, Any]
    cases: list[dict[str, Any]] = field(default_factory=list)
    link_series: dict[str, list[list[float]]] = field(default_factory=dict)  # "link dir" -> [[t, kbps]]
    notes: list[str] = field(default_factory=list)
    partial: bool = True  # until the last case is done

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "cases": self.cases, "link_series": self.link_series, "notes": self.notes,
                "partial": self.partial}


Progress = Callable[[str, float], None]  # (what is happening, fraction done)


async def _control_plane(topo_file: Path, work: Path) -> tuple[web.AppRunner, str, dict[str, str]]:
    from confctl.app import make_app
    from confctl.config import Settings
    from rooms.store.engine import make_engine
    from rooms.store.migrate import upgrade
    from rooms.store.users import Role, UserStore
    from rooms.topology import load_topology_file
    url = f"sqlite:///{work}/harness.db"
    engine = make_engine(url)
    upgrade(engine)
    users, known = UserStore(engine), set(load_topology_file(topo_file).sites)
    # The admin may book at emergency precedence: mobile platforms and the vehicle take part in emergencies.
    tokens = {"admin": users.add("harness-admin", Role.ADMIN, None, known, ("emergency",))[1]}
    tokens.update({n: users.add(n, Role.NODE, None, known)[1] for n in load_topology_file(topo_file).nodes})
    engine.dispose()
    runner = web.AppRunner(make_app(Settings(topology_file=topo_file, db_url=url, recordings_dir=work / "rec")))
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)  # reached at HARNESS_ADDR from inside the emulated WAN
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://{HARNESS_ADDR}:{port}", tokens


async def measure(cfg: RunConfig, topo_file: Path, progress: Progress = lambda what, done: None,
                  result: RunResult | None = None) -> RunResult:
    """Each case on its own emulated WAN, control plane and nodes: only its link is scaled, and no
    case inherits another's queues, registrations or counters."""
    require_root()
    remove_leftovers()
    topo = cfg.topology
    result = result or RunResult({})
    result.config = {"scale": cfg.scale, "scale_above_kbps": cfg.scale_above_kbps, "window_s": cfg.window_s,
                     "cases": [c.name for c in cfg.cases], "started": datetime.now(timezone.utc).isoformat()}
    for c in cfg.cases:
        video_clip(*_profile_size(topo, c.profile), cache=cfg.cache)  # encoded once, before anything runs
    audio_clip(cache=cfg.cache)
    total = sum(_max_steps(topo, c, cfg) for c in cfg.cases)
    for case in cfg.cases:
        await _case(cfg, topo_file, case, result, lambda what: progress(
            what, sum(len(c["steps"]) for c in result.cases) / max(1, total)))
    result.partial = False
    progress("done", 1.0)
    return result


def case_scale(topo: Topology, case: Case, cfg: RunConfig) -> float:
    """The factor the case's link is emulated at: 1 below the threshold; else the run's scale, or less
    when the model would then carry more sessions than this machine can run (stated in the report)."""
    link_rate = topo.links[case.link].rate_kbps  # type: ignore[index]
    if link_rate <= cfg.scale_above_kbps:
        return 1.0
    figures = model(topo, case, cfg.scale, cfg.scale_above_kbps)
    if figures.carried <= cfg.max_sessions:
        return cfg.scale
    return round((cfg.max_sessions + 0.5) * figures.per_session_kbps / link_rate, 4)


async def _case(cfg: RunConfig, topo_file: Path, case: Case, result: RunResult, progress: Callable[[str], None]) -> None:
    topo = cfg.topology
    scale = case_scale(topo, case, cfg)
    selection = sorted({s for i in range(_max_steps(topo, case, cfg)) for s in session_sites(topo, case.link, i)})
    # Only the measured link is scaled: nothing else may bind first.
    plan = plan_wan(topo, selection, scale, f"ccw{secrets.token_hex(2)}", expand=False, only=case.link)
    figures = model(topo, case, scale)
    entry: dict[str, Any] = {"case": case.name, "link": case.link, "link_class": link_class(topo, case.link),
                             "profile": case.profile, "plan": case.plan.value,
                             "sites": session_sites(topo, case.link),
                             "model": {**figures.__dict__, "direction": figures.direction.value},
                             "scale": scale, "steps": []}
    result.cases.append(entry)
    work = Path(tempfile.mkdtemp(prefix="confctl-capacity-"))
    # The control plane admits on the network as emulated (the measured link at its scaled rate), so
    # the sessions past the model are exactly the ones booked with the override.
    emulated = work / "topology.yaml"
    emulated.write_text(json.dumps(_scaled_document(topo, case.link, plan.uplink(case.link).rate_kbps)))  # type: ignore[union-attr]
    with Wan(plan) as wan:
        result.notes += [n for n in wan.notes if n not in result.notes]
        runner, control, tokens = await _control_plane(emulated, work)
        try:
            nodes = start_nodes(wan, topo, control, tokens, work)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
                await _until_registered(http, control, set(nodes))
                k = 1
                while True:
                    progress(f"{case.name}: {k} session{'s' * (k > 1)}")
                    step = await _step(http, control, wan, case, k, cfg, work, result)
                    entry["steps"].append(step)
                    if not step["passed"] and k > figures.carried:
                        break
                    if k >= _max_steps(topo, case, cfg):
                        break
                    k += 1
            entry["measured"] = measured_capacity(entry["steps"])
        finally:
            await runner.cleanup()


def start_nodes(wan: Wan, topo: Topology, control: str, tokens: dict[str, str], work: Path) -> set[str]:
    """Every media node whose site is in the emulated network, as a process in that site's namespace."""
    nodes = {n.id: n.site for n in topo.nodes.values() if n.site in wan.plan.namespaces}
    for node_id, site in nodes.items():
        wan.spawn(site, [CONFCTL, "media-node", "--control", control, "--id", node_id,
                         "--host", "0.0.0.0", "--port", str(NODE_PORT), "--public-url",
                         f"http://{wan.plan.address(site)}:{NODE_PORT}", "--recordings", str(work / "rec")],
                  stdout=subprocess.DEVNULL, stderr=open(work / f"{node_id}.log", "w"),
                  env={**os.environ, "CONFCTL_NODE_TOKEN": tokens[node_id]})  # never on the command line
    return set(nodes)


def _scaled_document(topo: Topology, link: str, rate_kbps: int) -> dict[str, Any]:
    doc = json.loads(json.dumps(topo.to_dict()))
    for site in doc["sites"]:
        if site["id"] == link:
            site["uplink_mbps"] = rate_kbps / 1000
    return doc


def _max_steps(topo: Topology, case: Case, cfg: RunConfig) -> int:
    steps = model(topo, case, case_scale(topo, case, cfg)).carried + cfg.beyond + 2
    return steps if cfg.max_steps is None else min(steps, cfg.max_steps)


def _profile_size(topo: Topology, name: str) -> tuple[int, int, int]:
    p = topo.profile(name)
    if p is None or not p.has_video:
        raise ValueError(f"profile {name!r}: the harness measures video profiles")
    return p.width, p.height, p.video_kbps


async def _until_registered(http: aiohttp.ClientSession, control: str, nodes: set[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with http.get(f"{control}/api/media-nodes") as r:
            alive = {n["id"] for n in (await r.json())["nodes"] if n["alive"] and not n["in_process"]}
        if nodes <= alive:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"media nodes did not register in the emulated network: {sorted(nodes - alive)}")


async def book_sessions(http: aiohttp.ClientSession, control: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sessions = []
    for body in bodies:
        async with http.post(f"{control}/api/sessions", json={**body, "override": True}) as r:
            out = await r.json()
            if r.status != 201:
                raise RuntimeError(f"booking refused even with the override: {out}")
            sessions.append(out)
    return sessions


@dataclass
class Window:
    """What the synthetic sites measured over one common window, and the links' kernel counters."""
    reports: list[dict[str, Any]]
    t0: float
    t1: float
    samples: list[tuple[float, dict[tuple[str, str], int]]]
    drops: dict[tuple[str, str], int]  # during the run of the agents

    def kbps(self, link: str, d: str) -> int | None:
        inside = [(t, b[(link, d)]) for t, b in self.samples if self.t0 <= t <= self.t1 + 0.5]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return round(8 * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) / 1000)

    def series(self, link: str, d: str) -> list[tuple[float, int]]:
        base = self.samples[0][0] if self.samples else 0.0
        return [(round(tb - base, 2), round(8 * (bb[(link, d)] - ba[(link, d)]) / (tb - ta) / 1000))
                for (ta, ba), (tb, bb) in zip(self.samples, self.samples[1:])]


async def run_sites(wan: Wan, control: str, sessions: list[dict[str, Any]], profile: tuple[int, int, int],
                    cfg: RunConfig, step_dir: Path) -> Window:
    """One synthetic-site process per site of the sessions, in its namespace; one window for all."""
    while step_dir.exists():  # never reuse a step's folder
        step_dir = step_dir.with_name(step_dir.name + "-again")
    (step_dir / "sched").mkdir(parents=True)
    width, height, kbps = profile
    agents = {}
    sites = sorted({s["site"] for sess in sessions for s in sess["sites"]})
    for site in sites:
        up = wan.plan.uplink(SiteId(site))
        spec = {"site": site, "control": control, "cache": str(cfg.cache.resolve()), "sched_dir": str(step_dir / "sched"),
                "delay_ms": up.delay_ms if up is not None and not wan.netem else 0,
                "profile": {"width": width, "height": height, "video_kbps": kbps},
                "warmup_s": cfg.warmup_s, "window_s": cfg.window_s,
                "legs": [{"session": s["id"], "token": parse_qs(urlparse(s["join_urls"][site]).query)["token"][0],
                          "send": True} for s in sessions if site in s["join_urls"]]}
        (step_dir / f"{site}.spec.json").write_text(json.dumps(spec))
        agents[site] = wan.spawn(site, [sys.executable, "-m", "harness.site_agent", "--spec",
                                        str(step_dir / f"{site}.spec.json"), "--out", str(step_dir / f"{site}.json")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=open(step_dir / f"{site}.log", "w"), text=True,
                                 cwd=str(Path(__file__).resolve().parents[1]))
    samples: list[tuple[float, dict[tuple[str, str], int]]] = []
    window: list[float] = []

    async def sample_links() -> None:
        while True:
            samples.append((time.monotonic(), await asyncio.to_thread(wan.link_bytes)))
            await asyncio.sleep(0.5)

    async def all_say(word: str) -> bool:
        lines = await asyncio.gather(*(asyncio.to_thread(p.stdout.readline) for p in agents.values()))  # type: ignore[union-attr]
        return all(line.strip() == word for line in lines)

    def tell(word: str) -> None:
        for p in agents.values():
            try:
                p.stdin.write(word + "\n")  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                pass
    drops_before = wan.link_drops()
    sampler = asyncio.create_task(sample_links())
    try:
        if await asyncio.wait_for(all_say("ready"), timeout=cfg.warmup_s + 60):
            window.append(time.monotonic())
            tell("go")  # one window for every site
            await asyncio.wait_for(all_say("done"), timeout=cfg.window_s + 60)
        tell("bye")
        deadline = time.monotonic() + 30
        while any(p.poll() is None for p in agents.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    except asyncio.TimeoutError:
        pass
    finally:
        for p in agents.values():
            if p.poll() is None:
                p.kill()
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    reports = []
    for site in sites:
        path = step_dir / f"{site}.json"
        reports.append(json.loads(path.read_text()) if path.exists() else {"site": site, "error": "no report"})
    drops_after = wan.link_drops()
    t0 = window[0] if window else (samples[0][0] if samples else time.monotonic())
    return Window(reports, t0, t0 + cfg.window_s, samples,
                  {key: drops_after[key] - drops_before.get(key, 0) for key in drops_after})


def quality(reports: list[dict[str, Any]]) -> dict[str, Any]:
    streams = [st for r in reports for leg in r.get("legs", []) for st in leg["streams"]]
    legs = [leg for r in reports for leg in r.get("legs", [])]
    return {"worst_loss_pct": max((leg["loss_pct"] for leg in legs), default=None),
            "freezes": sum(s["freezes"] for s in streams), "min_fps": min((s["fps"] for s in streams), default=0),
            "delay_ms_p95": max((s["delay_ms_p95"] for s in streams if s["delay_ms_p95"] is not None), default=None)}


async def _step(http: aiohttp.ClientSession, control: str, wan: Wan, case: Case, k: int, cfg: RunConfig,
                work: Path, result: RunResult) -> dict[str, Any]:
    topo = cfg.topology
    start = datetime.now(timezone(timedelta(hours=8)))
    thin = topo.sites[case.link].level == "mobile"  # mobile platforms and the vehicle: emergencies
    bodies = []
    for i in range(k):
        sites = session_sites(topo, case.link, i)
        bodies.append({"title": f"capacity {case.name} #{i + 1}", "host_site": sites[0], "sites": sites[1:],
                       "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(),
                       "profile": case.profile, "plan": case.plan.value,
                       # a thin link's site takes the layout admission picks for it (the speaker only)
                       "auto_layouts": True, **({"precedence": "emergency"} if thin else {})})
    sessions = await book_sessions(http, control, bodies)
    overridden = sum(1 for s in sessions if s["admission_override"])
    w = await run_sites(wan, control, sessions, _profile_size(topo, case.profile), cfg,
                        work / f"{case.link}-{case.profile}-{case.plan.value}-{k}")
    passed, why = step_passes(w.reports, sum(w.drops[(case.link, d)] for d in ("up", "down")))
    async with http.get(f"{control}/api/alarms", params={"since": start.isoformat()}) as r:
        alarms = [{k: a.get(k) for k in ("kind", "subject", "site_id", "value", "threshold", "message")}
                  for a in (await r.json()).get("alarms", [])] if r.status == 200 else []
    for d in ("up", "down"):
        series = result.link_series.setdefault(f"{case.name}|{d}", [])
        offset = series[-1][0] + 1 if series else 0.0
        series += [[offset + t, v] for t, v in w.series(case.link, d)]
    for s in sessions:  # the next step starts from an idle network
        await http.delete(f"{control}/api/sessions/{s['id']}")
    await _until_idle(http, control)
    return {"sessions": k, "passed": passed, "why": why, "overridden": overridden,
            "link_kbps": {d: w.kbps(case.link, d) for d in ("up", "down")},
            "link_drops": {d: w.drops[(case.link, d)] for d in ("up", "down")}, **quality(w.reports),
            "layouts": [s["media_plan"].get("layouts", {}) for s in sessions], "alarms": alarms,
            "reports": w.reports}


async def _until_idle(http: aiohttp.ClientSession, control: str) -> None:
    """Cancelled sessions' legs leave when their agents exit; wait until no leg is live anywhere."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with http.get(f"{control}/api/live") as r:
            live = await r.json()
        if not any(x["legs"] for x in live["sessions"]):
            return
        await asyncio.sleep(0.3)
