"""The operators' pipeline's CPU per sampling round with 100 legs, beside its sampling alone (same run).

One round turns the nodes' figures into samples (monitoring/pipeline.py, what existed before alarms),
then live link load along each leg's path, alarm observations and the hysteresis step, and the
dashboard snapshot encoded as JSON (what each round adds). 100 legs: ten sessions of a prefecture
and nine counties each, on the demo topology, every leg's counters moving as a live leg's do.
Database writes and the nodes' getStats are not in it (threads and other processes do them).

Prints the median of --rounds rounds: ms per round, % of one core at a 3 s sampling interval, and
the ratio of a full round to sampling alone.

    .venv/bin/python scripts/bench/pipeline.py [--legs 100] [--rounds 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from monitoring.alarm_config import AlarmConfig  # noqa: E402
from monitoring.alarm_rules import leg_observations, link_observations  # noqa: E402
from monitoring.alarm_window import leg_windows  # noqa: E402
from monitoring.alarms import AlarmEngine  # noqa: E402
from monitoring.dashboard import snapshot  # noqa: E402
from monitoring.link_load import live_link_load, utilization_rows  # noqa: E402
from monitoring.pipeline import SAMPLE_S, QualityPipeline  # noqa: E402
from rooms.topology import demo_topology  # noqa: E402


def sessions_of(topo, legs: int, step: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """Figures as the nodes give them: cumulative counters `step` samples in."""
    prefectures = [s for s in topo.sites.values() if s.level == "prefecture"]
    out, n = [], 0
    while n < legs:
        pref = prefectures[len(out) % len(prefectures)]
        sites = [pref.id] + [c for c in topo.children[pref.id] if topo.sites[c].level == "county"][:9]
        legs_here = []
        for site in sites[: legs - n]:
            lost = step * (3 if site.endswith("a") else 0)  # some legs lose packets: alarms have work
            legs_here.append({"site": site, "node": f"node-{pref.id}", "bytes_in": {"audio": step * 12_000,
                              "video": step * 300_000}, "bytes_forwarded": step * 600_000,
                              "frames_in": {"video": step * 90}, "freezes": 0, "packets_lost": lost,
                              "packets_received": step * 330, "jitter_ms": 4.0, "rtt_ms": 30.0,
                              "resolution": "1280x720"})
        n += len(legs_here)
        out.append({"session": f"ses_{len(out)}", "node": "in-process", "legs": legs_here,
                    "trunks": [{"child": f"node-{pref.id}", "parent": "node-jl", "bytes_up": step * 50_000,
                                "bytes_down": step * 600_000}]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--legs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    topo, cfg = demo_topology(), AlarmConfig()
    figures = [sessions_of(topo, args.legs, k) for k in range(args.rounds + 1)]
    reserved = {(l, d): 4000 for l in topo.links for d in ("up", "down")}
    sample_only, full = [], []
    for label, times in (("sample", sample_only), ("full", full)):
        pipeline, engine = QualityPipeline(), AlarmEngine(cfg.hysteresis)
        pipeline.sample(figures[0], 0.0)
        for k in range(1, args.rounds + 1):
            t0 = time.process_time()
            samples = pipeline.sample(figures[k], 3.0 * k)
            if label == "full":
                rows = utilization_rows(topo, reserved, live_link_load(topo, pipeline.latest.values()))
                engine.step(leg_observations(cfg, topo, leg_windows(pipeline, cfg.window.samples))
                            + link_observations(cfg, topo, rows),
                            3.0 * k)
                json.dumps(snapshot(cfg, topo, pipeline.latest.values(), rows, [], {}, 3.0 * k))
            times.append(time.process_time() - t0)
        assert len(samples) >= args.legs
    base, whole = statistics.median(sample_only), statistics.median(full)
    print(f"{args.legs} legs, median of {args.rounds} rounds")
    print(f"  sampling alone (baseline): {1000 * base:6.2f} ms per round, {100 * base / SAMPLE_S:5.2f} % of a core")
    print(f"  full operators' round:     {1000 * whole:6.2f} ms per round, {100 * whole / SAMPLE_S:5.2f} % of a core "
          f"at one round per {SAMPLE_S:g} s")
    print(f"  ratio full / sampling alone: {whole / base:.1f}x")


if __name__ == "__main__":
    main()
