"""Admission + commit latency with 10,000 bookings on the demo network, against a bare insert.

Stores 10,000 accepted bookings spread over 90 days (random sites, profiles,
plans, lengths), then books new ones and, interleaved in the same loop on the
same database file with the same pragmas (WAL, synchronous=FULL), times a bare
sqlite3 INSERT + COMMIT of one row. Prints p50/p95 of accepted and refused
requests (a refusal includes its alternatives: a lower profile, the other plan,
the earliest later start), bookings/s while filling, and the ratios to the
baseline. Then a fresh process on the filled database (a cold start: no parsed
topology, no memo of what sessions hold) books the next requests the same way.
Targets: accepted p50 ratio <= 3; refused p95 <= 10 ms.

    .venv/bin/python scripts/bench/admission.py [--bookings 10000] [--samples 1000]
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
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


def cold_start(url: str, samples: int, days: int, seed: int) -> dict[str, float]:
    """In a fresh process: time to the first answer, then p50/p95 of the next requests."""
    t = time.perf_counter()
    engine = make_engine(url)
    store = BookingStore(engine)
    topo = store.topology()
    rng = random.Random(seed)
    t0 = int((datetime.now(TZ) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    first = None
    acc: list[float] = []
    ref: list[float] = []
    for _ in range(samples):
        req = random_request(rng, topo, t0, days)
        s = time.perf_counter()
        out = store.book(req, META, "bench")
        dt = time.perf_counter() - s
        if first is None:
            first = time.perf_counter() - t  # opening the database included
        (acc if isinstance(out.decision, Accepted) else ref).append(dt)
    return {"first_ms": (first or 0) * 1000, "acc_p50": pct(acc, .5) * 1000, "acc_p95": pct(acc, .95) * 1000,
            "ref_p50": pct(ref, .5) * 1000, "ref_p95": pct(ref, .95) * 1000, "n_acc": len(acc), "n_ref": len(ref)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bookings", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--instances", type=int, help="instead: accepted bookings/s through 1 and through N "
                    "confctl serve on one PostgreSQL, over HTTP (scripts/bench/instances.py)")
    ap.add_argument("--cold-from", help=argparse.SUPPRESS)  # internal: the fresh process of the cold start
    args = ap.parse_args()
    if args.instances:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from instances import main as instances
        instances(args.instances, min(args.bookings, 400))
        return
    if args.cold_from:
        print(json.dumps(cold_start(args.cold_from, args.samples, args.days, args.seed)))
        return
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

    raw.close()
    print("cold start: a fresh process on the filled database ...", file=sys.stderr, flush=True)
    cold = json.loads(subprocess.run(
        [sys.executable, __file__, "--cold-from", url, "--samples", "300", "--days", str(args.days),
         "--seed", str(args.seed + 1)], check=True, capture_output=True, text=True).stdout)

    ms = 1000.0
    p50a, p95a = pct(book_acc, .5) * ms, pct(book_acc, .95) * ms
    p50b, p95b = pct(bare, .5) * ms, pct(bare, .95) * ms
    p50r, p95r = pct(book_ref, .5) * ms, pct(book_ref, .95) * ms
    print(f"stored {accepted} bookings over {args.days} days in {fill_s:.1f} s "
          f"({attempts} requests, {attempts / fill_s:.0f} requests/s, {accepted / fill_s:.0f} bookings/s)")
    print(f"REFUSED requests (admission + alternatives), {accepted} stored: n={len(book_ref)} "
          f"p50 {p50r:.3f} ms  p95 {p95r:.3f} ms   (target p95 <= 10 ms)")
    print(f"accepted bookings (admission + commit): n={len(book_acc)} p50 {p50a:.3f} ms  p95 {p95a:.3f} ms  "
          f"-> {1000 / statistics.mean([x * ms for x in book_acc]):.0f} bookings/s")
    print(f"baseline bare sqlite3 insert+commit of one row: p50 {p50b:.3f} ms  p95 {p95b:.3f} ms")
    print(f"ratio to baseline: accepted p50 {p50a / p50b:.2f} (target <= 3), p95 {p95a / p95b:.2f}; "
          f"refused p50 {p50r / p50b:.1f}, p95 {p95r / p95b:.1f}")
    print(f"cold start (fresh process, {cold['n_acc'] + cold['n_ref']} requests): first answer {cold['first_ms']:.0f} ms; "
          f"accepted p50 {cold['acc_p50']:.3f} p95 {cold['acc_p95']:.3f} ms; refused p50 {cold['ref_p50']:.3f} "
          f"p95 {cold['ref_p95']:.3f} ms")


if __name__ == "__main__":
    main()
