"""Owned background work: every task has an owner that keeps it, logs its failure and awaits it.

`TaskGroup.spawn` runs a one-shot coroutine (a key-frame request, closing a leg, a SIP
transaction's work). `TaskGroup.keep_alive` runs a loop that must live (recordings
retention, a node's heartbeat): when it fails or returns, it is logged and restarted with
exponential backoff, and `status()` says so, for `/api/health`. `close()` cancels loops,
awaits every task, and may be called twice.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger("supervision")


class LoopState(str, enum.Enum):
    RUNNING = "running"
    BACKING_OFF = "backing_off"  # failed; restarts after the delay
    STOPPED = "stopped"


@dataclass
class LoopStatus:
    state: LoopState = LoopState.RUNNING
    restarts: int = 0
    last_error: str | None = None
    last_failed_at: float | None = None
    next_delay_s: float | None = None  # the wait before the restart under way

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "restarts": self.restarts, "last_error": self.last_error,
                "last_failed_at": self.last_failed_at}


def backoff_delay(failures: int, first_s: float, max_s: float) -> float:
    """Seconds before restart number `failures` (1, 2, ...): doubling from first_s up to max_s."""
    return min(max_s, first_s * 2 ** max(0, failures - 1))


class TaskGroup:
    def __init__(self, owner: str):
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: dict[str, LoopStatus] = {}
        self._loop_tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s: %s failed: %r", self.owner, what, t.exception(), exc_info=t.exception())
        task.add_done_callback(done)
        return task

    def keep_alive(self, factory: Callable[[], Awaitable[None]], name: str,
                   first_backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                   healthy_after_s: float | None = None) -> LoopStatus:
        """Run `factory()` until close(); restart it with backoff whenever it fails or returns. The backoff
        doubles over failures in a row; a run that lasted `healthy_after_s` (default: the cap) starts it over,
        so a loop that fails once a day is back after `first_backoff_s`, not the cap, for good."""
        status = self._loops[name] = LoopStatus()
        reset_after = max_backoff_s if healthy_after_s is None else healthy_after_s

        async def supervise() -> None:
            failures = 0
            while not self._closed:
                status.state = LoopState.RUNNING
                started = time.monotonic()
                try:
                    await factory()
                    error = "returned"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure: logged, restarted; the loop must live
                    error = repr(exc)
                    log.error("%s: %s failed, restarting: %r", self.owner, name, exc, exc_info=exc)
                if time.monotonic() - started >= reset_after:
                    failures = 0  # it had been running well: this failure is a new one, not the next in a row
                failures += 1
                status.restarts += 1
                status.last_error, status.last_failed_at = error, time.time()
                status.state = LoopState.BACKING_OFF
                status.next_delay_s = backoff_delay(failures, first_backoff_s, max_backoff_s)
                await asyncio.sleep(status.next_delay_s)
            status.state = LoopState.STOPPED

        task = self.spawn(supervise(), f"supervisor of {name}")
        self._loop_tasks.add(task)
        task.add_done_callback(self._loop_tasks.discard)
        return status

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: s.to_dict() for name, s in self._loops.items()}

    @property
    def healthy(self) -> bool:
        return all(s.state is not LoopState.BACKING_OFF for s in self._loops.values())

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel the kept-alive loops, then await every task (one-shot work finishes)."""
        self._closed = True
        for s in self._loops.values():
            s.state = LoopState.STOPPED
        for t in list(self._loop_tasks):
            t.cancel()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
