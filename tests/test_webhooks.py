"""Alarm webhooks over real HTTP: delivered, retried, bounded, and one that hangs delays no other."""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from monitoring.alarm_config import Webhook
from monitoring.webhooks import WebhookSender, Webhooks
from tests.media.peers import until


async def _receiver(aiohttp_server, behaviour):  # type: ignore[no-untyped-def]
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        return await behaviour(body, got)
    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}/hook", got


async def test_a_hanging_webhook_does_not_delay_another_and_a_failing_one_is_retried(aiohttp_server):
    async def ok(body, got):
        got.append({**body, "received": time.monotonic()})
        return web.json_response({})
    hang_forever = asyncio.Event()

    async def hang(body, got):
        got.append(body)
        await hang_forever.wait()  # never answers; the sender's timeout ends each attempt
        return web.json_response({})
    fails = {"left": 2}

    async def flaky(body, got):
        if fails["left"]:
            fails["left"] -= 1
            return web.json_response({}, status=503)
        got.append(body)
        return web.json_response({})
    ok_url, ok_got = await _receiver(aiohttp_server, ok)
    hang_url, hang_got = await _receiver(aiohttp_server, hang)
    flaky_url, flaky_got = await _receiver(aiohttp_server, flaky)
    hooks = Webhooks((Webhook(hang_url, timeout_s=30, retries=0), Webhook(ok_url), Webhook(flaky_url, retries=3)),
                     first_retry_s=0.05)
    hooks.start()
    try:
        offered = time.monotonic()
        for i in range(3):
            hooks.offer({"event": "raised", "n": i})  # never waits, whatever the hooks do
        assert time.monotonic() - offered < 0.1
        await until(lambda: len(ok_got) == 3 and len(flaky_got) == 3, timeout=10, what="both live webhooks got all three")
        assert [b["n"] for b in ok_got] == [0, 1, 2] and [b["n"] for b in flaky_got] == [0, 1, 2]
        assert ok_got[-1]["received"] - offered < 5  # while the hanging one still holds its first event
        assert len(hang_got) == 1
        status = {s["url"]: s for s in hooks.status()}
        assert status[flaky_url]["delivered"] == 3 and status[flaky_url]["failed"] == 0
        assert status[hang_url]["delivered"] == 0 and status[hang_url]["queued"] == 2
    finally:
        hang_forever.set()
        await hooks.close()


async def test_a_full_queue_drops_its_oldest_events_and_a_dead_webhook_gives_up_after_its_retries():
    sender = WebhookSender(Webhook("http://127.0.0.1:9/hook", timeout_s=1, retries=1), queue_size=3, first_retry_s=0.01)
    for i in range(5):
        sender.offer({"n": i})
    assert [e["n"] for e in sender.queue] == [2, 3, 4] and sender.status.dropped == 2
    import aiohttp
    async with aiohttp.ClientSession() as http:
        await sender._deliver(http, {"n": 9})  # port 9 (discard) refuses: two attempts, then given up
    assert sender.status.failed == 1 and sender.status.delivered == 0
