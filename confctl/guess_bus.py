"""The SIP password-guess throttle shared by every control plane on one PostgreSQL.

Each instance keeps its own replica of the throttle (sip_stub/throttle.py), as its worker processes
do: asking the database before every digest check would put it on every REGISTER's path. What an
instance records (or its workers bring up) is NOTIFYed on a channel; what another instance NOTIFYed
is applied here and passed down to this instance's workers. So a guesser that spent its budget on
one instance is refused unchecked on the other after one hop through PostgreSQL (milliseconds), and
never gets a fresh budget by switching instance behind the load balancer.

Times cross hosts as ages, not clock readings: each host's monotonic clock is its own.
Lossy by design, like the worker relay: outcomes queued while the database is away are kept up to
MAX_PENDING and sent when it is back; beyond that they are dropped and counted, never blocking SIP.
SQLite has no second host to share with: there the bus is not started (confctl/app.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from typing import Callable, Protocol

import psycopg
from sqlalchemy.engine import URL

from sip_stub.throttle import MAX_KEY_CHARS, GuessEvent, GuessOutcome

log = logging.getLogger("confctl.guess_bus")
MAX_PENDING = 4096
RETRY_S = (0.5, 1.0, 2.0, 5.0)
CONNECT = {"autocommit": True, "connect_timeout": 3, "keepalives": 1, "keepalives_idle": 2,
           "keepalives_interval": 1, "keepalives_count": 2}


def channel_for(url: URL) -> str:
    """One channel per database and schema: NOTIFY is database-wide, and tests share a database by schema."""
    where = f"{url.host}:{url.port}/{url.database}?{url.query.get('options', '')}"
    return "confctl_sip_guess_" + hashlib.sha256(where.encode()).hexdigest()[:12]


def encode(instance: str, event: GuessEvent, now: float) -> str:
    return json.dumps({"i": instance, "o": event.outcome.value, "s": event.source, "a": event.account,
                       "age": round(max(0.0, now - event.at), 3)}, separators=(",", ":"))


def decode(payload: str, now: float) -> tuple[str, GuessEvent]:
    """(sender instance, the event on this host's clock); ValueError on anything malformed."""
    try:
        d = json.loads(payload)
        instance, source, account, age = d["i"], d["s"], d["a"], float(d["age"])
        outcome = GuessOutcome(d["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a guess outcome: {exc}") from None
    if not all(isinstance(x, str) for x in (instance, source, account)) or not 0 <= age < 86400:
        raise ValueError("not a guess outcome: bad field")
    if len(source) > 2 * MAX_KEY_CHARS or len(account) > 2 * MAX_KEY_CHARS:
        raise ValueError("not a guess outcome: key too long")
    return instance, GuessEvent(outcome, source, account, now - age)


class SipServiceLike(Protocol):  # what the bus needs of sip_stub.service.SipService
    guess_sinks: list[Callable[[GuessEvent], None]]

    def heard(self, event: GuessEvent, origin: Callable[[GuessEvent], None]) -> None: ...


class GuessBus:
    def __init__(self, url: URL, instance: str, stats: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel_for(url)
        # Unique per process and start: two apps in one test process share a pid and maybe an instance id.
        self.instance, self.clock = f"{instance}/{secrets.token_hex(4)}", clock
        self._pending: asyncio.Queue[GuessEvent] = asyncio.Queue(MAX_PENDING)
        self._hear: Callable[[GuessEvent], None] | None = None
        self.listening = asyncio.Event()
        self.backends: tuple[int, int] | None = None
        self.stats = stats if stats is not None else {}  # the endpoint's: counted in /metrics with SIP's own
        for counter in ("guesses_published", "guesses_received", "guesses_unsent", "guesses_malformed"):
            self.stats.setdefault(counter, 0)

    def sink(self, event: GuessEvent) -> None:
        """An outcome recorded on this instance (or brought up by its workers): to the others."""
        try:
            self._pending.put_nowait(event)
        except asyncio.QueueFull:
            self.stats["guesses_unsent"] += 1

    def attach(self, service: SipServiceLike) -> None:
        service.guess_sinks.append(self.sink)
        self._hear = lambda event: service.heard(event, origin=self.sink)

    async def run(self) -> None:
        """Until cancelled: listen and publish, reconnecting by itself when the database goes away."""
        failures = 0
        while True:
            try:
                await self._connected()
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
                if failures == 0:
                    log.warning("SIP guess sharing with other instances interrupted (%s); retrying", exc)
                failures += 1
                await asyncio.sleep(delay)
            else:
                failures = 0

    async def _connected(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.conninfo, **CONNECT) as listen, \
                await psycopg.AsyncConnection.connect(self.conninfo, **CONNECT) as publish:
            await listen.execute(f'LISTEN "{self.channel}"')
            self.backends = (listen.info.backend_pid, publish.info.backend_pid)  # for operators (and a test)
            self.listening.set()
            log.info("SIP guess throttle shared with other instances on channel %s", self.channel)
            # Not a TaskGroup: its ExceptionGroup would slip past run()'s reconnect; the first of the two to
            # fail (the database restarted) ends both, and its error is raised as itself.
            both = {asyncio.create_task(self._receive(listen)), asyncio.create_task(self._publish(publish))}
            try:
                done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in both:
                    t.cancel()
                await asyncio.gather(*both, return_exceptions=True)
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]

    async def _publish(self, conn: psycopg.AsyncConnection) -> None:
        while True:
            event = await self._pending.get()
            try:
                await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, encode(self.instance, event,
                                                                                     self.clock())))
            except BaseException:
                self._requeue(event)
                raise
            self.stats["guesses_published"] += 1

    def _requeue(self, event: GuessEvent) -> None:
        try:
            self._pending.put_nowait(event)  # order is no matter: the throttle never refills backwards
        except asyncio.QueueFull:
            self.stats["guesses_unsent"] += 1

    async def _receive(self, conn: psycopg.AsyncConnection) -> None:
        async for note in conn.notifies():
            try:
                instance, event = decode(note.payload, self.clock())
            except ValueError as exc:
                self.stats["guesses_malformed"] += 1
                log.warning("dropped a shared guess outcome: %s", exc)
                continue
            if instance == self.instance or self._hear is None:
                continue  # our own, back from the channel
            self.stats["guesses_received"] += 1
            self._hear(event)


