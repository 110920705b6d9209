"""Admission + commit latency with 10,000 bookings on the demo network, against a bare insert.

Stores 10,000 accepted bookings spread over 90 days (random sites, profiles,
plans, lengths), then books new ones and, interleaved in the same loop on the
same database file with the same pragmas (WAL, synchronous=FULL), times a bare
sqlite3 INSERT + COMMIT of one row. Prints p50/p95 of both, bookings/s and
the ratio. Target: ratio <= 3, >= 200 bookings/s.

    .venv/bin/python scripts/bench/admission.py [--bookings 10000] [--samples 1000]
"""
from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rooms.admission import Accepted, BookingRequest, Occurrence, SiteChoice  # noqa: E402
from rooms.booking_form import SessionMeta  # noqa: E402
from rooms.ids import PlanKind, SiteId  # noqa: E402
from rooms.store.bookings import BookingStore  # noqa: E402
from rooms.store.engine import make_engine  # noqa: E402
from rooms.store.migrate import upgrade  # noqa: E402
from rooms.topology import Topology, demo_topology  # noqa: E402

TZ = timezone(timedelta(hours=8))
META = SessionMeta("bench", 480, None, False, "", "")


def random_request(rng: random.Random, topo: Topology, t0: int, days: int) -> BookingRequest:
    profile = rng.choices(["hd1080", "hd720", "sd", "audio"], [1, 4, 3, 1])[0]
    # Organizers don't ask for video over the 2 Mbit/s satellite and department links.
    sites = [s for s in topo.sites if profile == "audio" or s not in topo.links or topo.links[s].rate_kbps > 2000]
    chosen = rng.sample(sites, rng.randint(2, 6))
    start = t0 + rng.randrange(days * 24 * 4) * 900  # on the quarter hour
    length = rng.choice([1800, 3600, 3600, 5400, 7200, 10800])
    plan = rng.choices([PlanKind.CASCADE, PlanKind.CENTRAL], [4, 1])[0]
    return BookingRequest(SiteId(chosen[0]), tuple(SiteChoice(SiteId(s)) for s in chosen),
                          (Occurrence(start, start + length),), profile, plan)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bookings", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="confctl-bench-"))
    url = f"sqlite:///{tmp}/bench.db"
    engine = make_engine(url)
    upgrade(engine)
    store = BookingStore(engine)
    topo = demo_topology()
    store.set_topology(topo)
    tomorrow = (datetime.now(TZ) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = int(tomorrow.timestamp())

    accepted = attempts = 0
    fill_start = time.perf_counter()
    with tqdm(total=args.bookings, desc="storing bookings", unit="bk", file=sys.stderr) as bar:
        while accepted < args.bookings:
            attempts += 1
            if isinstance(store.book(random_request(rng, topo, t0, args.days), META, "bench").decision, Accepted):
                accepted += 1
                bar.update(1)
    fill_s = time.perf_counter() - fill_start

    # The baseline: one row, one commit, on the same file with the same pragmas.
    raw = sqlite3.connect(f"{tmp}/bench.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)")

    book_acc: list[float] = []
    book_ref: list[float] = []
    bare: list[float] = []
    for i in tqdm(range(args.samples), desc="measuring", unit="bk", file=sys.stderr):
        req = random_request(rng, topo, t0, args.days)
        t = time.perf_counter()
        out = store.book(req, META, "bench")
        dt = time.perf_counter() - t
        (book_acc if isinstance(out.decision, Accepted) else book_ref).append(dt)
        t = time.perf_counter()
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO bare (a, b) VALUES (?, ?)", ("x", i))
        raw.execute("COMMIT")
        bare.append(time.perf_counter() - t)

    ms = 1000.0
    p50a, p95a = pct(book_acc, .5) * ms, pct(book_acc, .95) * ms
    p50b, p95b = pct(bare, .5) * ms, pct(bare, .95) * ms
    print(f"stored {accepted} bookings over {args.days} days in {fill_s:.1f} s "
          f"({attempts} requests, {attempts / fill_s:.0f} requests/s, {accepted / fill_s:.0f} bookings/s)")
    print(f"new accepted bookings (admission+commit): n={len(book_acc)} p50 {p50a:.3f} ms  p95 {p95a:.3f} ms  "
          f"-> {1000 / statistics.mean([x * ms for x in book_acc]):.0f} bookings/s")
    if book_ref:
        print(f"new refused requests (admission + alternatives): n={len(book_ref)} "
              f"p50 {pct(book_ref, .5) * ms:.3f} ms  p95 {pct(book_ref, .95) * ms:.3f} ms")
    print(f"baseline bare sqlite3 insert+commit of one row: p50 {p50b:.3f} ms  p95 {p95b:.3f} ms")
    print(f"ratio booking/baseline: p50 {p50a / p50b:.2f}  p95 {p95a / p95b:.2f}   (target <= 3)")


if __name__ == "__main__":
    main()
