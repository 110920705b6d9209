"""Alarm events POSTed to configured webhooks: a bounded queue and a sender per webhook.

`offer` never waits: the pipeline hands an event to every webhook's queue and goes on. Each
webhook has its own sender loop, so one that hangs (up to its timeout, on every retry) delays
only its own queue. A full queue drops its oldest event (counted in `dropped`): the newest
state of the network matters more than an old one. A failed POST is retried with backoff.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp

from supervision import TaskGroup, backoff_delay
from monitoring.alarm_config import Webhook

log = logging.getLogger("monitoring.webhooks")
QUEUE_SIZE = 1000


@dataclass
class WebhookStatus:
    delivered: int = 0
    failed: int = 0  # events given up after every retry
    dropped: int = 0  # events pushed out of a full queue
    queued: int = 0


class WebhookSender:
    def __init__(self, hook: Webhook, queue_size: int = QUEUE_SIZE, first_retry_s: float = 0.5):
        self.hook = hook
        self.queue: deque[dict[str, Any]] = deque()
        self.size = queue_size
        self.status = WebhookStatus()
        self.first_retry_s = first_retry_s
        self._wake = asyncio.Event()

    def offer(self, event: dict[str, Any]) -> None:
        if len(self.queue) >= self.size:
            self.queue.popleft()
            self.status.dropped += 1
        self.queue.append(event)
        self.status.queued = len(self.queue)
        self._wake.set()

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            event = self.queue.popleft()
            self.status.queued = len(self.queue)
            await self._deliver(http, event)

    async def _deliver(self, http: aiohttp.ClientSession, event: dict[str, Any]) -> None:
        for attempt in range(self.hook.retries + 1):
            try:
                async with http.post(self.hook.url, json=event,
                                     timeout=aiohttp.ClientTimeout(total=self.hook.timeout_s)) as r:
                    if r.status < 300:
                        self.status.delivered += 1
                        return
                    error = f"HTTP {r.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = repr(exc)
            log.warning("webhook %s: attempt %d failed: %s", self.hook.url, attempt + 1, error)
            if attempt < self.hook.retries:
                await asyncio.sleep(backoff_delay(attempt + 1, self.first_retry_s, 30.0))
        self.status.failed += 1


class Webhooks:
    """Every configured webhook's sender, owned: started with the app, awaited when it stops."""

    def __init__(self, hooks: tuple[Webhook, ...], first_retry_s: float = 0.5):
        self.senders = [WebhookSender(h, first_retry_s=first_retry_s) for h in hooks]
        self._tasks = TaskGroup("webhooks")
        self._http: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if not self.senders:
            return
        self._http = aiohttp.ClientSession()
        for s in self.senders:
            self._tasks.keep_alive(lambda s=s: s.run(self._http), f"webhook {s.hook.url}")  # type: ignore[misc, arg-type]

    def offer(self, event: dict[str, Any]) -> None:
        for s in self.senders:
            s.offer(event)

    def status(self) -> list[dict[str, Any]]:
        return [{"url": s.hook.url, **vars(s.status)} for s in self.senders]

    async def close(self) -> None:
        await self._tasks.close()
        if self._http is not None:
            await self._http.close()
