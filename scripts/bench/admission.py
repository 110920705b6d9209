"""Admission + commit latency as the calendar grows, against a bare insert + commit on the same database.

The calendar is filled a block at a time (default 10,000 accepted bookings spread over 90 days, random
sites, profiles, plans, lengths); each block takes the next 90 days, as a province's calendar grows
by time passing, so every block ends at the same density and a row differs from the one before only in
how many sessions are stored before it. The first row is the whole of this bench's earlier form
(10,000 over 90 days). After each block, `--samples` requests into that block are timed, interleaved in
the same loop with a bare INSERT + COMMIT of one row through the same driver and database settings
(SQLite: the store's pragmas, WAL and synchronous=FULL; PostgreSQL: the same server and schema). A
refusal's time includes its alternatives (a lower profile, the other plan, the earliest later start).
Each row prints the fill rate of its block, accepted p50/p95, refused p50/p95 and the ratio to the
bare commit. Then a fresh process on the filled database (a cold start: no parsed topology, no memo
of what sessions hold) books into the last block the same way.
Targets: fill rate flat within 25 % from the first block to the last; accepted p50 <= 3x the bare
commit; refused p95 <= 5 ms.

    .venv/bin/python scripts/bench/admission.py [--bookings 10000] [--block 10000] [--samples 1000]
        [--db postgresql+psycopg://postgres@127.0.0.1:5432/test]   (runs in a fresh schema, dropped after)
"""
from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
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
DAY = 86400


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
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


class Bare:
    """One row inserted and committed through the driver the store uses, on a connection made the same way."""

    def __init__(self, url: str):
        self._engine = make_engine(url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._conn = self._engine.raw_connection()  # the store's connect hook: the same pragmas / settings
        cur = self._conn.cursor()
        if self._sqlite:
            cur.execute("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, a TEXT, b INTEGER)")
        else:
            cur.execute("CREATE TABLE IF NOT EXISTS bare (id BIGSERIAL PRIMARY KEY, a TEXT, b INTEGER)")
            self._conn.commit()
        self._cur = cur

    def once(self, i: int) -> float:
        t = time.perf_counter()
        if self._sqlite:  # the connection is in autocommit (the store's hook): the store's own BEGIN
            self._cur.execute("BEGIN IMMEDIATE")
            self._cur.execute("INSERT INTO bare (a, b) VALUES (?, ?)", ("x", i))
            self._cur.execute("COMMIT")
        else:
            self._cur.execute("INSERT INTO bare (a, b) VALUES (%s, %s)", ("x", i))
            self._conn.commit()
        return time.perf_counter() - t

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()


@dataclass
class Row:
    stored: int  # accepted bookings before this block's samples
    fill_bookings_s: float
    fill_requests_s: float
    acc: list[float]
    ref: list[float]
    bare: list[float]
    ref_cpu: list[float]  # the refusals' process CPU time: what the machine's other load does not inflate

    def line(self) -> str:
        ms = 1000.0
        b50 = pct(self.bare, .5) * ms
        return (f"{self.stored:>8} {self.fill_bookings_s:>9.0f} {self.fill_requests_s:>9.0f} "
                f"{len(self.acc):>5} {pct(self.acc, .5) * ms:>7.3f} {pct(self.acc, .95) * ms:>7.3f} "
                f"{len(self.ref):>5} {pct(self.ref, .5) * ms:>7.3f} {pct(self.ref, .95) * ms:>7.3f} "
                f"{b50:>7.3f} {pct(self.bare, .95) * ms:>7.3f} {pct(self.acc, .5) * ms / b50:>6.2f} "
                f"{pct(self.ref_cpu, .95) * ms:>8.3f}")


HEAD = (f"{'stored':>8} {'fill bk/s':>9} {'req/s':>9} {'n acc':>5} {'acc p50':>7} {'acc p95':>7} "
        f"{'n ref':>5} {'ref p50':>7} {'ref p95':>7} {'bare50':>7} {'bare95':>7} {'ratio':>6} {'refcpu95':>8}")


def fill(store: BookingStore, topo: Topology, rng: random.Random, t0: int, days: int, n: int,
         bar: Any) -> tuple[int, float]:
    """Book until n are accepted into [t0, t0 + days); (requests made, seconds)."""
    accepted = attempts = 0
    start = time.perf_counter()
    while accepted < n:
        attempts += 1
        if isinstance(store.book(random_request(rng, topo, t0, days), META, "bench").decision, Accepted):
            accepted += 1
            bar.update(1)
    return attempts, time.perf_counter() - start


def measure(store: BookingStore, topo: Topology, rng: random.Random, t0: int, days: int, samples: int,
            bare: Bare | None) -> tuple[list[float], list[float], list[float], list[float]]:
    acc: list[float] = []
    ref: list[float] = []
    base: list[float] = []
    ref_cpu: list[float] = []
    for i in range(samples):
        req = random_request(rng, topo, t0, days)
        c = time.process_time()
        t = time.perf_counter()
        out = store.book(req, META, "bench")
        dt = time.perf_counter() - t
        if isinstance(out.decision, Accepted):
            acc.append(dt)
        else:
            ref.append(dt)
            ref_cpu.append(time.process_time() - c)
        if bare is not None:
            base.append(bare.once(i))
    return acc, ref, base, ref_cpu


def cold_start(url: str, samples: int, t0: int, days: int, seed: int) -> dict[str, float]:
    """In a fresh process: time to the first answer, then p50/p95 of the next requests."""
    t = time.perf_counter()
    store = BookingStore(make_engine(url))
    topo = store.topology()
    rng = random.Random(seed)
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


@contextmanager
def database(db: str | None) -> Iterator[str]:
    """SQLite in a new temporary file, or a fresh schema of the PostgreSQL given (dropped afterwards)."""
    if not db:
        tmp = Path(tempfile.mkdtemp(prefix="confctl-bench-"))
        yield f"sqlite:///{tmp}/bench.db"
        return
    u = make_url(db)
    if u.get_backend_name() != "postgresql":
        raise SystemExit(f"--db: a postgresql+psycopg:// URL (SQLite is the default), not {db!r}")
    schema = "bench_" + secrets.token_hex(6)
    admin = create_engine(u)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield u.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run(url: str, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    rng = random.Random(args.seed)
    engine = make_engine(url)
    upgrade(engine)
    store = BookingStore(engine)
    topo = demo_topology()
    store.set_topology(topo)
    t0 = int((datetime.now(TZ) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    bare = Bare(url)
    rows: list[Row] = []
    stored = block = 0
    block_t0 = t0
    print(f"{engine.dialect.name}: blocks of {args.block} bookings over {args.days} days each; "
          f"{args.samples} timed requests per row", flush=True)
    print(HEAD, flush=True)
    with tqdm(total=args.bookings, desc="storing bookings", unit="bk", file=sys.stderr) as bar:
        while stored < args.bookings:
            n = min(args.block, args.bookings - stored)
            block_t0 = t0 + block * args.days * DAY
            attempts, secs = fill(store, topo, rng, block_t0, args.days, n, bar)
            stored += n
            acc, ref, base, ref_cpu = measure(store, topo, rng, block_t0, args.days, args.samples, bare)
            rows.append(Row(stored, n / secs, attempts / secs, acc, ref, base, ref_cpu))
            stored += len(acc)
            bar.total += len(acc)
            bar.update(len(acc))
            tqdm.write(rows[-1].line(), file=sys.stdout)
            sys.stdout.flush()
            block += 1
    bare.close()
    engine.dispose()
    say("cold start: a fresh process on the filled database ...")
    cold = json.loads(subprocess.run(
        [sys.executable, __file__, "--cold-from", url, "--samples", "300", "--days", str(args.days),
         "--t0", str(block_t0), "--seed", str(args.seed + 1)], check=True, capture_output=True, text=True).stdout)
    first, last = rows[0], rows[-1]
    print(f"fill rate: first block {first.fill_bookings_s:.0f} bookings/s, last {last.fill_bookings_s:.0f}/s "
          f"({(last.fill_bookings_s / first.fill_bookings_s - 1) * 100:+.0f} %; target within 25 %)")
    for r in (first, last) if len(rows) > 1 else (first,):
        ms = 1000.0
        print(f"at {r.stored} stored: accepted p50 {pct(r.acc, .5) * ms:.3f} ms = {pct(r.acc, .5) / pct(r.bare, .5):.2f}x "
              f"the bare commit {pct(r.bare, .5) * ms:.3f} ms (target <= 3); refused p95 {pct(r.ref, .95) * ms:.3f} ms "
              f"(target <= 5; its CPU time {pct(r.ref_cpu, .95) * ms:.3f} ms); accepted mean {1000 / statistics.mean([x * ms for x in r.acc]):.0f} bookings/s")
    print(f"cold start at {stored} stored (fresh process, {cold['n_acc'] + cold['n_ref']} requests): first answer "
          f"{cold['first_ms']:.0f} ms; accepted p50 {cold['acc_p50']:.3f} p95 {cold['acc_p95']:.3f} ms; "
          f"refused p50 {cold['ref_p50']:.3f} p95 {cold['ref_p95']:.3f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bookings", type=int, default=10_000)
    ap.add_argument("--block", type=int, default=10_000, help="bookings per row (each block its own days)")
    ap.add_argument("--samples", type=int, default=1000, help="timed requests per row")
    ap.add_argument("--days", type=int, default=90, help="days each block spreads over")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--db", help="postgresql+psycopg://... to run on PostgreSQL (a fresh schema); SQLite otherwise")
    ap.add_argument("--instances", type=int, help="instead: accepted bookings/s through 1 and through N "
                    "confctl serve on one PostgreSQL, over HTTP (scripts/bench/instances.py)")
    ap.add_argument("--cold-from", help=argparse.SUPPRESS)  # internal: the fresh process of the cold start
    ap.add_argument("--t0", type=int, help=argparse.SUPPRESS)  # internal: the cold start's block
    args = ap.parse_args()
    if args.instances:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from instances import main as instances
        instances(args.instances, min(args.bookings, 400))
        return
    if args.cold_from:
        print(json.dumps(cold_start(args.cold_from, args.samples, args.t0, args.days, args.seed)))
        return
    with database(args.db) as url:
        run(url, args, lambda s: print(s, file=sys.stderr, flush=True))


if __name__ == "__main__":
    main()
