"""What HTTPS and WSS cost the control plane, against plain HTTP and WS in the same run.

Starts `confctl serve` twice on one database (once plain, once with a throw-away CA's certificate
from scripts/dev-ca.sh), then times, alternating between the two so that machine noise falls on both:
- authenticated API reads (GET /api/sessions, keep-alive, one client) — p50 and requests/s;
- a browser's first contact: a new connection, the join WebSocket to /ws, and its first answer
  (a refusal for a bad token: the control plane's own work, no media) — p50.
Prints each figure with HTTPS/HTTP as the ratio.

    .venv/bin/python scripts/bench/tls.py [--requests 2000] [--joins 200]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rooms.store.users import Role  # noqa: E402
from tests.conftest import add_users  # noqa: E402
from tests.media.node_processes import CONFCTL, free_port  # noqa: E402


async def wait_up(http: aiohttp.ClientSession, base: str, ctx: ssl.SSLContext | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{base}/api/health", ssl=ctx if ctx else False) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.2)
    raise SystemExit(f"{base} did not come up")


async def reads(base: str, ctx: ssl.SSLContext | None, token: str, n: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(n):
            t = time.perf_counter()
            async with http.get(f"{base}/api/sessions", ssl=ctx if ctx else False) as r:
                await r.read()
            out.append(time.perf_counter() - t)
    return out


async def joins(base: str, ctx: ssl.SSLContext | None, n: int) -> list[float]:
    out = []
    ws_base = base.replace("https://", "wss://").replace("http://", "ws://")
    for _ in range(n):
        t = time.perf_counter()
        async with aiohttp.ClientSession() as http:  # a new connection each time, as a new page
            async with http.ws_connect(f"{ws_base}/ws", ssl=ctx if ctx else False) as ws:
                await ws.send_json({"type": "join", "token": "not-a-token"})
                await ws.receive_json()
        out.append(time.perf_counter() - t)
    return out


def p50_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--joins", type=int, default=200)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="confctl-tls-bench-"))
    subprocess.run([str(ROOT / "scripts/dev-ca.sh"), str(work / "tls")], check=True, capture_output=True)
    db = f"sqlite:///{work}/bench.db"
    subprocess.run([CONFCTL, "topology", "load", str(ROOT / "rooms/data/jilin.yaml"), "--db", db], check=True,
                   capture_output=True)
    token = add_users(db, [("bench-operator", Role.OPERATOR, None)])["bench-operator"]
    plain_port, tls_port = free_port(), free_port()
    common = [CONFCTL, "serve", "--db", db, "--sip-port", "0", "--host", "127.0.0.1"]
    procs = [subprocess.Popen([*common, "--port", str(plain_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([*common, "--port", str(tls_port), "--tls-cert", str(work / "tls/server.pem"),
                               "--tls-key", str(work / "tls/server.key")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    ctx = ssl.create_default_context(cafile=str(work / "tls/ca.pem"))
    plain, tls = f"http://127.0.0.1:{plain_port}", f"https://127.0.0.1:{tls_port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_up(http, plain, None)
            await wait_up(http, tls, ctx)
        r = {"http": [], "https": []}
        j = {"http": [], "https": []}
        rounds = 10  # alternate in slices: noise on this 2-core machine lands on both sides
        for i in range(rounds):
            r["http"] += await reads(plain, None, token, args.requests // rounds)
            r["https"] += await reads(tls, ctx, token, args.requests // rounds)
            j["http"] += await joins(plain, None, args.joins // rounds)
            j["https"] += await joins(tls, ctx, args.joins // rounds)
            print(f"  round {i + 1}/{rounds}", file=sys.stderr, flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
    rps = {k: len(v) / sum(v) for k, v in r.items()}
    print(f"API read (GET /api/sessions, keep-alive): HTTP p50 {p50_ms(r['http']):.2f} ms ({rps['http']:.0f}/s), "
          f"HTTPS p50 {p50_ms(r['https']):.2f} ms ({rps['https']:.0f}/s); HTTPS/HTTP {p50_ms(r['https']) / p50_ms(r['http']):.2f}x")
    print(f"first contact (new connection, /ws join answered): WS p50 {p50_ms(j['http']):.2f} ms, "
          f"WSS p50 {p50_ms(j['https']):.2f} ms; WSS/WS {p50_ms(j['https']) / p50_ms(j['http']):.2f}x")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
