"""What one end of a trunk's WebSocket sends, in the order the other end needs it.

Two kinds of message cross a trunk. Events (the offer and answer, audio levels) are queued in order up
to a bound; beyond it they are dropped and counted (a level a second late is worth nothing). State
(the root's `order`, the child's `present` sites) is never dropped: only the latest of each kind waits,
and a newer one replaces an unsent older one. A bounded queue that dropped an order while the sender
recorded it as sent left a child on a stale program until something else changed (issue 24).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

STATE_KINDS = frozenset({"order", "present"})
MAX_QUEUED = 200


class TrunkOutbox:
    def __init__(self, max_queued: int = MAX_QUEUED):
        self._queue: deque[dict[str, Any]] = deque()
        self._state: dict[str, dict[str, Any]] = {}
        self._max = max_queued
        self._ready = asyncio.Event()
        self.dropped = 0

    def send(self, msg: dict[str, Any]) -> None:
        if msg.get("type") in STATE_KINDS:
            self._state.pop(msg["type"], None)
            self._state[msg["type"]] = msg  # the latest, behind any other kind waiting
        elif len(self._queue) >= self._max:
            self.dropped += 1
            return
        else:
            self._queue.append(msg)
        self._ready.set()

    async def next(self) -> dict[str, Any]:
        """The next message to write: queued events first (the answer precedes any order), then state."""
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._state:
                kind = next(iter(self._state))
                return self._state.pop(kind)
            self._ready.clear()
            await self._ready.wait()

    def __len__(self) -> int:
        return len(self._queue) + len(self._state)
