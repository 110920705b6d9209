"""SIP worker processes: they answer registrations, relay calls, and never outlive the service.

Calls relayed through workers are exercised by the gateway tests marked
WITH_WORKERS (a phone and a browser, sipp dialling in, dial-out).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from confctl.keys import SIP_ENDPOINT, SIP_WORKERS
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role
from tests.conftest import add_users
from tests.media.peers import until
from tests.sip.test_hostile import options
from tests.sip.test_sipp import bound_sip_port, free_udp_port, sipp
from tests.sip.udp_client import udp_client

CONFCTL = str(Path(sys.executable).parent / "confctl")


@pytest.fixture
async def plane(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/sip.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=0, sip_workers=2)))
    port = bound_sip_port(server.app)
    store = SipStore(make_engine(url))
    store.add_account("desk-101", "cc-nongan", "s3cret-pass", "confctl")
    token = add_users(url, [("opal", Role.OPERATOR, None)])["opal"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async def status() -> dict:
            async with http.get(f"http://127.0.0.1:{server.port}/api/sip/status") as r:
                assert r.status == 200
                return await r.json()
        yield port, store, server.app, status
    store.engine.dispose()


async def test_workers_answer_registrations_and_report_to_operators(plane, tmp_path):
    port, store, app, status = plane
    rc, log = await sipp(port, "register_auth.xml", "-s", "desk-101", "-au", "desk-101", "-ap", "s3cret-pass",
                         calls=40, rate=100, cwd=tmp_path)
    assert rc == 0, log
    (binding,) = store.bindings("desk-101", int(time.time()))
    assert binding.contact.startswith("sip:desk-101@127.0.0.1:")

    async def all_reported() -> dict | None:
        s = await status()
        return s if sum(w["stats"].get("received", 0) for w in s["workers"]) >= 80 else None
    s = await until(all_reported, what="the workers reporting 80 REGISTERs")
    # every REGISTER was read and answered by a worker: half statelessly (the 401s), none by this process
    assert [w["running"] for w in s["workers"]] == [True, True] and not s["reading_socket"]
    assert sum(w["stats"]["stateless"] for w in s["workers"]) >= 40  # (more if sipp retransmitted one)
    assert s["stats"]["received"] == 0 and app[SIP_ENDPOINT].stats["received"] == 0


async def test_when_every_worker_dies_the_main_process_reads_the_socket_again(plane):
    port, _, app, status = plane
    for p in app[SIP_WORKERS].procs:
        os.kill(p.pid, signal.SIGKILL)
    await until(lambda: app[SIP_ENDPOINT].transport.is_reading(), what="the main process reading again")
    s = await status()
    assert s["reading_socket"] and [w["exit_code"] for w in s["workers"]] == [-signal.SIGKILL] * 2
    ua = await udp_client()
    try:
        ua.send(options(port, ua.port, 1), port)
        assert (await ua.recv()).startswith(b"SIP/2.0 200")
        assert app[SIP_ENDPOINT].stats["received"] == 1
    finally:
        ua.transport.close()


def children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


async def test_a_killed_service_leaves_no_worker_behind(tmp_path):
    port = free_udp_port()
    serve = subprocess.Popen([CONFCTL, "serve", "--db", f"sqlite:///{tmp_path}/k.db", "--topology", str(demo_topology_path()), "--port", str(free_udp_port()),
                              "--sip-port", str(port), "--sip-workers", "2"],
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ua = await udp_client()
        try:
            async def answered() -> bool:  # retried until the service is up, within until's deadline
                assert serve.poll() is None, serve.stderr.read()
                ua.send(options(port, ua.port, 2), port)
                return not await ua.nothing_within(0.2)
            await until(answered, timeout=60, what="the service answering OPTIONS")
        finally:
            ua.transport.close()
        workers = children(serve.pid)
        assert len(workers) == 2
        serve.kill()  # SIGKILL: no shutdown code runs in the parent
        serve.wait(timeout=10)
        await until(lambda: not any(alive(w) for w in workers), what="the workers exiting")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=10)


async def test_the_database_url_is_neither_on_a_workers_command_line_nor_in_its_environment(plane):
    port, store, app, status = plane
    workers = app[SIP_WORKERS].procs
    assert len(workers) == 2
    for p in workers:
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "sip_stub.worker_process" in cmdline and "sqlite:" not in cmdline and "--db" not in cmdline
        # /proc/PID/environ keeps what a process started with for its whole life, whatever it pops later
        assert b"sqlite:" not in Path(f"/proc/{p.pid}/environ").read_bytes()


async def test_on_a_python_whose_datagram_transports_cannot_pause_workers_still_take_over(aiohttp_server, tmp_path,
                                                                                         monkeypatch):
    # Debian 12's python3 (3.11.2) raises NotImplementedError here; 3.11.4 and later implement it.
    import asyncio.selector_events as events

    def unsupported(self, *a):  # a fault-injecting fake of the older interpreter
        raise NotImplementedError
    for name in ("pause_reading", "resume_reading"):  # (is_reading too there, but this loop's internals call it)
        monkeypatch.setattr(events._SelectorDatagramTransport, name, unsupported, raising=False)
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=f"sqlite:///{tmp_path}/o.db",
                                                    sip_port=0, sip_workers=1)))
    app = server.app
    port = bound_sip_port(app)
    ua = await udp_client()
    try:
        ua.send(options(port, ua.port, 1), port)
        assert (await ua.recv()).startswith(b"SIP/2.0 200")
        assert app[SIP_ENDPOINT].stats["received"] == 0  # a worker answered: this process does not read
        os.kill(app[SIP_WORKERS].procs[0].pid, signal.SIGKILL)
        await until(lambda: app[SIP_WORKERS].status()["reading_socket"], what="the main process reading again")
        ua.send(options(port, ua.port, 2), port)
        assert (await ua.recv()).startswith(b"SIP/2.0 200")
        assert app[SIP_ENDPOINT].stats["received"] == 1
    finally:
        ua.transport.close()
