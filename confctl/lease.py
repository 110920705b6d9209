"""Keeping the work lease (rooms/store/lease.py): this instance does the once-only work while it holds it.

Polled every second. On gaining it, the new holder picks up where the last one left (open alarms are
adopted, not cleared and raised again, so a webhook receiver gets each event once); on losing it, the
work stops before anyone else can take the lease.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from rooms.store.lease import Lease

log = logging.getLogger("confctl.lease")
POLL_S = 1.0


class LeaseKeeper:
    def __init__(self, lease: Lease, instance: str, on_gain: Callable[[], Awaitable[None]],
                 on_loss: Callable[[], None]):
        self.lease, self.instance = lease, instance
        self._on_gain, self._on_loss = on_gain, on_loss
        self.held = False
        self.since: float | None = None  # when this instance took it (epoch)
        self.changes = 0

    async def run(self) -> None:
        try:
            while True:
                try:
                    now_held = await asyncio.to_thread(self.lease.try_acquire)
                except Exception as exc:  # the database is unreachable: nobody can hold it through us
                    log.warning("work lease: %s", str(exc).splitlines()[0])
                    now_held = False
                if now_held and not self.held:
                    try:
                        await self._on_gain()  # open alarms adopted before any work runs as the holder
                    except BaseException:
                        await asyncio.to_thread(self.lease.release)  # not ready to lead: let another
                        raise
                    self.held, self.since, self.changes = True, time.time(), self.changes + 1
                    log.warning("%s holds the work lease: alarms, call records, node watch and retention run here",
                                self.instance)
                elif not now_held and self.held:
                    self._lose("lost the work lease")
                await asyncio.sleep(POLL_S)
        finally:
            if self.held:
                self._lose("stops holding the work lease")
            await asyncio.to_thread(self.lease.release)

    def _lose(self, what: str) -> None:
        self.held, self.since, self.changes = False, None, self.changes + 1
        log.warning("%s %s: its once-only work stops", self.instance, what)
        self._on_loss()

    def status(self) -> dict[str, object]:
        return {"instance": self.instance, "holds_work_lease": self.held, "since": self.since, "changes": self.changes}
