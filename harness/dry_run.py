"""`confctl dryrun SESSION_ID`: a booked meeting rehearsed over the emulated WAN before it happens.

The session's own media plan runs with synthetic sites (one process per site, in its namespace)
and media nodes as processes, for a minute by default, while every other session booked at that
time loads the same links as background: constant-rate UDP at each one's reserved kbit/s per
link and direction (what admission counted for them). It reports pass or fail per link (did its
queue drop anything while the meeting ran) and per site (loss < 1 %, no freeze).
"""
from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from harness.cases import MACHINE_DELAY_MS
from harness.measured_run import (RunConfig, _control_plane, _profile_size, _until_registered, book_sessions,
                                  run_sites, start_nodes)
from harness.wan import Wan, remove_leftovers, require_root
from harness.wan_plan import plan_wan
from media.synthetic import audio_clip, video_clip
from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.topology import Topology

FILLER_PACKET = 1200


@dataclass
class DryRunResult:
    session: str
    links: list[dict[str, Any]] = field(default_factory=list)
    sites: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.sites) and all(x["passed"] for x in self.links + self.sites)

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.session, "passed": self.passed, "links": self.links, "sites": self.sites,
                "notes": self.notes}


def background_of(store: BookingStore, session: dict[str, Any]) -> dict[tuple[str, str], int]:
    """Every other session's reserved kbit/s per (link, direction) over this session's first window."""
    occ = session["occurrences"][0]
    start = int(datetime.fromisoformat(occ["start"]).timestamp())
    end = int(datetime.fromisoformat(occ["end"]).timestamp())
    return store.all_link_peaks(start, end, exclude=session["id"])


def _filler(rate_kbps: int, to_addr: str, seconds: float) -> list[str]:
    pps = max(1.0, rate_kbps * 1000 / 8 / FILLER_PACKET)
    code = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nd=b'x'*%d\nt=time.monotonic()\n"
            "i=0\nwhile time.monotonic()-t<%f:\n  s.sendto(d,(%r,9))\n  i+=1\n"
            "  w=t+i/%f-time.monotonic()\n  w>0 and time.sleep(w)\n" % (FILLER_PACKET - 28, seconds, to_addr, pps))
    return [sys.executable, "-c", code]


async def dry_run(db_url: str, session_id: str, seconds: float = 60, warmup_s: float = 20) -> DryRunResult:
    require_root()
    remove_leftovers()
    engine = make_engine(db_url)
    try:
        store = BookingStore(engine)
        session = store.get(session_id)
        topo: Topology = store.topology()
        background = background_of(store, session)
    finally:
        engine.dispose()
    result = DryRunResult(session_id)
    profile = _profile_size(topo, session["profile"])
    video_clip(*profile)
    audio_clip()
    sites = [s["site"] for s in session["sites"]]
    plan = plan_wan(topo, sites, 1.0, f"ccw{secrets.token_hex(2)}", expand=False)
    work = Path(tempfile.mkdtemp(prefix="confctl-dryrun-"))
    (work / "topology.yaml").write_text(json.dumps(topo.to_dict()))
    cfg = RunConfig(topo, [], window_s=seconds, warmup_s=warmup_s)
    with Wan(plan) as wan:
        result.notes += wan.notes
        runner, control, tokens = await _control_plane(work / "topology.yaml", work)
        try:
            nodes = start_nodes(wan, topo, control, tokens, work)
            # Background: the other sessions' reservations on every link this meeting uses.
            for link in plan.links:
                for d, (src, dst) in (("up", (link.child, link.parent_addr)), ("down", (link.parent, link.child_addr))):
                    kbps = background.get((str(link.child), d), 0)
                    if kbps:
                        wan.spawn(src, _filler(kbps, dst, warmup_s + seconds + 60), stdout=subprocess.DEVNULL)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
                await _until_registered(http, control, set(nodes))
                now = datetime.now(timezone(timedelta(hours=8)))
                (rehearsed,) = await book_sessions(http, control, [{
                    "title": f"dry run of {session_id}", "host_site": session["host_site"],
                    "sites": [s for s in sites if s != session["host_site"]], "start": now.isoformat(),
                    "end": (now + timedelta(hours=1)).isoformat(), "profile": session["profile"],
                    "plan": session["plan"]}])
                w = await run_sites(wan, control, [rehearsed], profile, cfg, work / "run")
        finally:
            await runner.cleanup()
    reserved = {(row["link"], d): row[f"{d}_kbps"] for row in session["media_plan"]["links"] for d in ("up", "down")}
    for link in plan.links:
        for d in ("up", "down"):
            key = (str(link.child), d)
            if not reserved.get(key) and not background.get(key):
                continue
            dropped = w.drops.get(key, 0)
            result.links.append({"link": link.child, "direction": d, "rate_kbps": link.rate_kbps,
                                 "session_kbps": reserved.get(key, 0), "background_kbps": background.get(key, 0),
                                 "measured_kbps": w.kbps(str(link.child), d), "dropped_packets": dropped,
                                 "passed": dropped == 0})
    any_drops = any(x["dropped_packets"] for x in result.links)
    for r in w.reports:
        legs = r.get("legs", [])
        streams = [s for leg in legs for s in leg["streams"]]
        freezes = [f"{s['freezes']} freezes of {s['from']}'s video" for s in streams if s["freezes"]]
        # As in the measured run (harness/cases.py): a freeze with nothing lost or dropped and delay
        # normal is this machine stalling a process, noted, not charged to the network.
        stalled = bool(freezes) and not any_drops and all(leg["loss_pct"] == 0 for leg in legs) and all(
            (s["delay_ms_p95"] or 0) < MACHINE_DELAY_MS for s in streams)
        if stalled:
            result.notes.append(f"{r['site']}: {'; '.join(freezes)} with nothing lost or dropped: this machine "
                                "stalled, not the network")
        problems = ([r["error"]] if "error" in r else []) + \
            [f"loss {leg['loss_pct']} %" for leg in legs if leg["loss_pct"] >= 1] + ([] if stalled else freezes)
        result.sites.append({"site": r["site"], "passed": not problems, "problems": problems,
                             "loss_pct": max((leg["loss_pct"] for leg in legs), default=None),
                             "min_fps": min((s["fps"] for s in streams), default=None),
                             "delay_ms_p95": max((s["delay_ms_p95"] or 0 for s in streams), default=None)})
    return result


def format_dry_run(r: DryRunResult) -> str:
    lines = [f"dry run of {r.session}: {'PASS' if r.passed else 'FAIL'}", "", "links (kbit/s):"]
    for x in r.links:
        lines.append(f"  {x['link']:<14} {x['direction']:<4} rate {x['rate_kbps']:>7,}  this session "
                     f"{x['session_kbps']:>6,}  others {x['background_kbps']:>6,}  measured "
                     f"{x['measured_kbps'] if x['measured_kbps'] is not None else '-':>6}  dropped "
                     f"{x['dropped_packets']:>6}  {'ok' if x['passed'] else 'FAIL'}")
    lines += ["", "sites:"]
    for s in r.sites:
        lines.append(f"  {s['site']:<14} {'ok' if s['passed'] else 'FAIL: ' + '; '.join(s['problems'])}"
                     f"  (worst loss {s['loss_pct']} %, slowest {s['min_fps']} fps, delay p95 {s['delay_ms_p95']} ms)")
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def cmd_dryrun(db_url: str, session_id: str, seconds: float, as_json: bool) -> int:
    r = asyncio.run(dry_run(db_url, session_id, seconds))
    print(json.dumps(r.to_dict(), indent=2) if as_json else format_dry_run(r))
    return 0 if r.passed else 1
