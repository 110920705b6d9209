"""Registrar persistence without a commit per REGISTER: group commit and a short-lived account cache.

While one batch of binding updates commits, the next REGISTERs queue up; the
writer then commits all of them in one transaction. Each REGISTER is answered
only after its batch committed, so a 200 still means the binding is stored.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from rooms.store.sip import Binding, BindingUpdate, SipAccount, SipStore

log = logging.getLogger("sip.registrations")
ACCOUNT_TTL_S = 10.0  # a new or changed account takes effect within this long on every instance
MAX_BATCH = 500

Blocking = Callable[..., Awaitable[Any]]


class Registrations:
    def __init__(self, store: SipStore, blocking: Blocking):
        self.store = store
        self.blocking = blocking
        self._accounts: dict[str, tuple[float, SipAccount | None]] = {}
        self._queue: asyncio.Queue[tuple[BindingUpdate, asyncio.Future[list[Binding]]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0

    async def account(self, username: str) -> SipAccount | None:
        hit = self._accounts.get(username)
        now = time.monotonic()
        if hit is not None and now - hit[0] < ACCOUNT_TTL_S:
            return hit[1]
        acc = await self.blocking(self.store.account, username)
        self._accounts[username] = (now, acc)
        return acc

    async def update(self, update: BindingUpdate) -> list[Binding]:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_batches())
        fut: asyncio.Future[list[Binding]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((update, fut))
        return await fut

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                results = await self.blocking(self.store.update_bindings_many, [u for u, _ in batch])
                self.batches += 1
                for (_, fut), res in zip(batch, results):
                    if not fut.done():
                        fut.set_result(res)
            except Exception as exc:  # the database failed: every REGISTER of the batch gets the error
                log.error("storing %d registrations failed: %r", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
