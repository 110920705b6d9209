"""Background loops that must live: a failure is logged, restarted with backoff, and shown in health."""
from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web

from confctl.app import make_app
from confctl.config import Settings
from media.node_server import KEY, make_node_app
from supervision import LoopState, TaskGroup, backoff_delay
from rooms.topology import demo_topology_path
from tests.media.peers import until


def test_backoff_doubles_up_to_its_cap():
    assert [backoff_delay(n, 1, 60) for n in (1, 2, 3, 7, 8, 20)] == [1, 2, 4, 60, 60, 60]


async def test_a_loop_that_fails_is_restarted_and_its_failures_counted():
    runs: list[int] = []
    steady = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise KeyError("grant_key")
        steady.set()
        await asyncio.Event().wait()  # then lives until closed

    group = TaskGroup("test")
    status = group.keep_alive(flaky, "flaky", first_backoff_s=0.01)
    await asyncio.wait_for(steady.wait(), 10)
    assert status.restarts == 2 and "KeyError" in (status.last_error or "") and status.state is LoopState.RUNNING
    await group.close()
    await group.close()  # idempotent
    assert status.state is LoopState.STOPPED and len(group) == 0


async def test_a_failing_retention_loop_shows_in_health(aiohttp_client, tmp_path):
    rec = tmp_path / "rec"
    odd = rec / "ses_x" / "old.webm"
    odd.mkdir(parents=True)  # a directory where a recording should be: unlink fails every round
    old = time.time() - 90 * 86400
    os.utime(odd, (old, old))
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(),
                                                    db_url=f"sqlite:///{tmp_path}/h.db", recordings_dir=rec)))

    async def failing() -> dict | None:
        body = await (await client.get("/api/health")).json()
        loop = body["tasks"]["recordings-retention"]
        return body if loop["restarts"] >= 1 else None
    body = await until(failing, what="the retention failure reaching /api/health")
    loop = body["tasks"]["recordings-retention"]
    assert body["ok"] is False and loop["state"] == "backing_off" and "IsADirectoryError" in loop["last_error"]


async def test_a_node_heartbeat_survives_a_control_plane_answering_nonsense(aiohttp_server):
    answers = iter([web.json_response({}), web.Response(text="<html>proxy error</html>", status=200)])

    async def register(request: web.Request) -> web.Response:
        try:
            return next(answers)
        except StopIteration:
            return web.json_response({"id": "node-cc", "grant_key": "ab" * 16})
    control = web.Application()
    control.router.add_post("/api/media-nodes", register)
    plane = await aiohttp_server(control)
    node_app = make_node_app(f"http://127.0.0.1:{plane.port}", "cct_x", "node-cc", "http://127.0.0.1:1",
                             heartbeat_s=0.05)
    node = await aiohttp_server(node_app)
    try:
        await until(lambda: bytes(node_app[KEY]) == bytes.fromhex("ab" * 16), what="registration after two bad beats")
    finally:
        await node.close()


async def test_the_backoff_starts_over_after_a_loop_ran_well():
    # Three failures in a row double the wait; a run that lasted its healthy span, then failed, waits the first
    # delay again: a loop that fails once a day must not wait the cap (and show not-ok) for good.
    delays: list[float] = []
    long_run = asyncio.Event()
    runs: list[int] = []

    async def loop() -> None:
        runs.append(1)
        if status.next_delay_s is not None:
            delays.append(status.next_delay_s)
        if len(runs) == 4:
            await asyncio.sleep(0.15)  # a healthy span, then the failure
        if len(runs) == 5:
            long_run.set()
            await asyncio.Event().wait()
        raise RuntimeError("flaky")

    group = TaskGroup("test")
    status = group.keep_alive(loop, "flaky", first_backoff_s=0.01, max_backoff_s=1.0, healthy_after_s=0.1)
    await asyncio.wait_for(long_run.wait(), 10)
    await group.close()
    assert delays == [0.01, 0.02, 0.04, 0.01], delays
