"""What the contract costs on the /figures path: a node's figures built as pydantic models and serialized, and
parsed back by the control plane, against the dict trees and json of before, for the same legs.

A node serves /figures every SAMPLE_S (3 s) for each control plane; the control plane parses every node's.
Prints, per round of `--legs` legs (default 1000, a busy node), the time to build + serialize and to parse,
each way, and the ratio. msgspec would be worth its second schema language only if this cost mattered
against the 3 s period.

    .venv/bin/python scripts/bench/node_figures.py [--legs 1000] [--rounds 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

from media.contracts.node import NodeFigures, Output, Program, SessionFigures, WebrtcLeg


def _as_models(legs: int) -> NodeFigures:
    sessions = []
    for s in range(legs // 4):
        sites = [f"site-{s}-{i}" for i in range(4)]
        sessions.append(SessionFigures(session=f"ses_{s}", host=sites[0], legs=[WebrtcLeg(
            site=site, state="connected", frames_in={"audio": 5000, "video": 9000}, bytes_in={"audio": 10**6, "video": 10**8},
            resolution="1280x720", frames_forwarded=27000, frames_dropped=3, freezes=0, bytes_forwarded=3 * 10**8,
            program=Program(video=sites[1:3], audio=sites[1]), senders_started=3,
            outputs=[Output(kind=k, live=True, recv_calls=1, queued=0, subscribed=True) for k in ("video", "video", "audio")],
            bitrate_in_kbps=2400, bitrate_out_kbps=4800, packets_lost=3, packets_received=90000, jitter_ms=4.2,
            jitter_ms_by_kind={"audio": 3.1, "video": 4.2}, rtt_ms=21.0) for site in sites]))
    return NodeFigures(node="node-cc", sessions=sessions, ended=[])


def _as_dicts(legs: int) -> dict[str, Any]:
    sessions = []
    for s in range(legs // 4):
        sites = [f"site-{s}-{i}" for i in range(4)]
        sessions.append({"session": f"ses_{s}", "host": sites[0], "legs": [{
            "site": site, "state": "connected", "frames_in": {"audio": 5000, "video": 9000},
            "bytes_in": {"audio": 10**6, "video": 10**8}, "resolution": "1280x720", "frames_forwarded": 27000,
            "frames_dropped": 3, "freezes": 0, "bytes_forwarded": 3 * 10**8,
            "program": {"video": sites[1:3], "audio": sites[1]}, "senders_started": 3,
            "outputs": [{"kind": k, "live": True, "recv_calls": 1, "queued": 0, "subscribed": True}
                        for k in ("video", "video", "audio")],
            "bitrate_in_kbps": 2400, "bitrate_out_kbps": 4800, "packets_lost": 3, "packets_received": 90000,
            "jitter_ms": 4.2, "jitter_ms_by_kind": {"audio": 3.1, "video": 4.2}, "rtt_ms": 21.0} for site in sites]})
    return {"node": "node-cc", "sessions": sessions, "ended": []}


def _median_ms(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--legs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    wire = _as_models(a.legs).model_dump_json().encode()
    build_models = _median_ms(lambda: _as_models(a.legs).model_dump_json(), a.rounds)
    build_dicts = _median_ms(lambda: json.dumps(_as_dicts(a.legs)), a.rounds)
    parse_models = _median_ms(lambda: NodeFigures.model_validate_json(wire), a.rounds)
    parse_dicts = _median_ms(lambda: json.loads(wire), a.rounds)
    print(f"{a.legs} legs, {len(wire) / 1000:.0f} kB of figures")
    print(f"node builds + serializes: models {build_models:.1f} ms, dicts + json {build_dicts:.1f} ms "
          f"(x{build_models / build_dicts:.2f})")
    print(f"control plane parses:     models {parse_models:.1f} ms, json.loads {parse_dicts:.1f} ms "
          f"(x{parse_models / parse_dicts:.2f})")
    print(f"both, per 3-s sample: {(build_models + parse_models) / 30:.2f} % of one core")


if __name__ == "__main__":
    main()
