"""Accepted bookings per second through one and through two `confctl serve` on one PostgreSQL, in one run.

Each round gets a fresh schema and its own instances; 8 clients book random SD sessions spread over 90
days (most fit) over HTTP, round-robin across the instances, as a load balancer would. Admission takes
one PostgreSQL advisory lock, so a second instance adds request handling, not admission throughput:
the ratio says how much of a booking's time is spent outside that lock.

    .venv/bin/python scripts/bench/admission.py --instances 2 [--bookings 400]
"""
from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rooms.store.users import Role  # noqa: E402
from tests.conftest import add_users, empty_pg_schema  # noqa: E402
from tests.media.node_processes import CONFCTL, free_port  # noqa: E402

TZ = timezone(timedelta(hours=8))
SITES = ["cc", "cc-nongan", "cc-yushu", "jlc", "jlc-jiaohe", "sp", "sp-lishu", "yb", "yb-antu", "th", "bs", "ly"]


def body(rng: random.Random) -> dict:
    start = (datetime.now(TZ) + timedelta(days=rng.randrange(1, 90), hours=rng.randrange(0, 23))).replace(
        minute=rng.choice([0, 30]), second=0, microsecond=0)
    return {"title": "bench", "host_site": "jl", "sites": rng.sample(SITES, 2), "start": start.isoformat(),
            "end": (start + timedelta(minutes=rng.choice([30, 60, 90]))).isoformat(), "profile": "sd"}


async def round_with(instances: int, bookings: int) -> float:
    procs = []
    with empty_pg_schema("bench_") as url:
        return await _measured(url, instances, bookings, procs)


async def _measured(url: str, instances: int, bookings: int, procs: list) -> float:  # type: ignore[type-arg]
    try:
        for argv in (["db", "upgrade"], ["topology", "load", str(ROOT / "rooms/data/jilin.yaml")]):
            subprocess.run([CONFCTL, *argv, "--db", url], check=True, capture_output=True)
        token = add_users(url, [("bench", Role.ORGANIZER, None)])["bench"]
        ports = [free_port() for _ in range(instances)]
        procs = [subprocess.Popen([CONFCTL, "serve", "--db", url, "--port", str(p), "--sip-port", "0",
                                   "--instance-id", f"bench{i}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i, p in enumerate(ports)]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for p in ports:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        async with http.get(f"http://127.0.0.1:{p}/api/health") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
            rng = random.Random(11)
            todo = [body(rng) for _ in range(bookings)]
            accepted = [0]
            bar = tqdm(total=bookings, desc=f"{instances} instance(s)", unit="bk", file=sys.stderr)

            async def client(k: int) -> None:
                n = k
                while todo:
                    b = todo.pop()
                    n += 1
                    async with http.post(f"http://127.0.0.1:{ports[n % instances]}/api/sessions", json=b) as r:
                        await r.read()
                        accepted[0] += r.status == 201
                    bar.update()
            t = time.perf_counter()
            await asyncio.gather(*(client(k) for k in range(8)))
            took = time.perf_counter() - t
            bar.close()
        return accepted[0] / took
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=15)


def main(instances: int, bookings: int) -> None:
    one = asyncio.run(round_with(1, bookings))
    many = asyncio.run(round_with(instances, bookings))
    print(f"accepted bookings/s on PostgreSQL over HTTP: 1 instance {one:.0f}/s, {instances} instances {many:.0f}/s; "
          f"ratio {many / one:.2f}x")
