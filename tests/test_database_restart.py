"""The database restarting: a PostgreSQL of the test's own (initdb in a temporary folder, another port) is
restarted during a booking burst and a live meeting. Nothing acknowledged is lost, no request gets a 500
(those caught in the gap get 503 with Retry-After), the control plane reconnects by itself, and the
meeting's media keeps flowing."""
from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import IN_CI, add_users
from tests.media.node_processes import CONFCTL, free_port, wait_serving
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of

TZ = timezone(timedelta(hours=8))
BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=60)


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own: (url, restart)."""
    if not BIN or os.geteuid() != 0:
        reason = "PostgreSQL server binaries or root missing"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    bindir = BIN[-1]
    folder = tempfile.mkdtemp(prefix="confctl-pg-")
    os.chmod(folder, 0o755)
    pg = pwd.getpwnam("postgres")
    os.chown(folder, pg.pw_uid, pg.pw_gid)
    data = os.path.join(folder, "data")
    port = free_port()
    r = _as_postgres(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    assert r.returncode == 0, r.stderr
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"

    def ctl(*args: str) -> None:
        r = _as_postgres(f"{bindir}/pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(folder, "log"), "-w", *args)
        assert r.returncode == 0, r.stdout + r.stderr
    ctl("start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", lambda: ctl("restart", "-m", "fast")
    finally:
        _as_postgres(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_postgresql_restart_mid_burst_and_mid_meeting_loses_nothing_and_answers_no_500(own_postgres, tmp_path):
    url, restart = own_postgres
    for argv in (["db", "upgrade"], ["topology", "load", str(demo_topology_path())]):
        subprocess.run([CONFCTL, *argv, "--db", url], check=True, capture_output=True)
    tokens = add_users(url, [("olga", Role.ORGANIZER, None)])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([CONFCTL, "serve", "--db", url, "--port", str(port), "--sip-port", "0"], stdout=log,
                             stderr=subprocess.STDOUT, cwd=tmp_path)
    h = {"Authorization": f"Bearer {tokens['olga']}"}
    peers: dict[str, SitePeer] = {}
    sockets = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_serving(http, base, serve)
            now = datetime.now(TZ)
            r = await http.post(f"{base}/api/sessions", headers=h, json={
                "title": "Live", "host_site": "jl", "sites": ["sp"], "start": now.isoformat(),
                "end": (now + timedelta(hours=1)).isoformat(), "profile": "sd", "plan": "central"})
            assert r.status == 201, await r.text()
            session = await r.json()
            for site in ("jl", "sp"):
                ws = await http.ws_connect(f"{base}/ws")
                sockets.append(ws)
                await ws.send_json({"type": "join", "token": token_of(session, site)})
                assert (await next_of(ws, "joined"))["type"] == "joined"
                peers[site] = SitePeer(70)
                await ws.send_json({"type": "offer", "sdp": await peers[site].offer()})
                await peers[site].accept((await next_of(ws, "answer"))["sdp"])
            frames = lambda: {s: max(p.frames.values(), default=0) for s, p in peers.items()}  # noqa: E731
            await until(lambda: min(frames().values()) > 30, timeout=30, what="the meeting flowing")

            statuses: list[int] = []
            acked: list[str] = []
            restarted: list[float] = []
            todo = list(range(120))

            async def booker() -> None:
                while todo:
                    i = todo.pop()
                    start = (now + timedelta(days=3, hours=i % 10)).replace(minute=0, second=0, microsecond=0)
                    body = {"title": f"Burst {i}", "host_site": "jl", "sites": [["cc-nongan", "sp-lishu", "yb-antu"][i % 3]],
                            "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"}
                    for _ in range(20):
                        async with http.post(f"{base}/api/sessions", headers=h, json=body) as r:
                            statuses.append(r.status)
                            if r.status == 503:
                                assert r.headers.get("Retry-After"), await r.text()
                                await asyncio.sleep(0.3)  # as its Retry-After asks, shortened
                                continue
                            if r.status == 201:
                                acked.append((await r.json())["id"])
                            break

            async def restart_mid_burst() -> None:
                await until(lambda: len(statuses) >= 30, timeout=60, what="the burst under way")
                before = frames()
                await asyncio.to_thread(restart)
                restarted.append(time.monotonic())
                await until(lambda: all(frames()[s] > before[s] + 30 for s in before), timeout=15,
                            what="media flowing across the database restart")
            await asyncio.gather(restart_mid_burst(), *(booker() for _ in range(4)))
            assert 500 not in statuses, statuses
            print(f"{len(statuses)} booking answers across the restart: {statuses.count(201)} booked, "
                  f"{statuses.count(409)} refused, {statuses.count(503)} told to retry; no 500")
            for sid in acked:  # nothing acknowledged is lost
                async with http.get(f"{base}/api/sessions/{sid}", headers=h) as r:
                    assert r.status == 200, (sid, r.status)
            async with http.get(f"{base}/api/health") as r:
                assert r.status == 200
    finally:
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()
        serve.terminate()
        serve.wait(timeout=15)
        log.close()
