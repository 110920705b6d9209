"""Calling an emergency's sites: when one opens, every site with a registered phone (a SIP account
bound to the site) is dialled at once through the SIP gateway, and each call is watched.

A call goes calling → ringing → answered, or fails with a reason in words (refused with its SIP code,
no answer, not registered). A failed call is tried again RETRIES times (three attempts in all), each
RETRY_AFTER_S after the failure; a ringing phone is left ringing (the duty officer sees it ring). A
call that was answered is not repeated, even when the phone later hangs up (`ended`): the duty officer
decides that, with the page's "Call them" button.

The calls are the app's (cleanup_ctx `owned`): every task is kept and, at shutdown, cancelled and
awaited before the SIP service closes. Progress lives in the process that opened the emergency.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from aiohttp import web

from confctl.keys import BOOKINGS, SIP_ENDPOINT, SIP_GATEWAY, SIP_SERVICE, SIP_STORE, run_read
from confctl.telephony import SessionConferences
from supervision import TaskGroup
from rooms.store.calls import CallRecords
from sip_stub.gateway import CallRejected
from sip_stub.transactions import State

log = logging.getLogger("confctl.emergency_calls")

RETRIES = 2  # a failed call is tried again twice: three attempts in all
RETRY_AFTER_S = 10.0  # from a failure to the next attempt
WATCH_S = 0.25  # how often a call in progress is looked at (in memory: the gateway's own tables)
RECORD_WAIT_S = 5.0  # how long a failed call's record may take to say why
END_WORDS = {"refused": "refused", "no_answer": "no answer", "not_acceptable": "no audio codec in common",
             "error": "gateway error", "shutdown": "the control plane stopped", "bye": "hung up",
             "cancelled": "cancelled"}


@dataclass
class CallProgress:
    site: str
    account: str
    state: str = "calling"  # calling | ringing | answered | ended | retrying | failed
    attempt: int = 1
    attempts: int = RETRIES + 1
    reason: str | None = None
    call_id: str | None = None
    retry_at: float | None = None
    history: list[str] = field(default_factory=lambda: ["calling"])  # every state it went through (and why), in order

    def to(self, state: str, reason: str | None = None) -> None:
        if state != self.state or reason != self.reason:
            log.info("emergency call to %s (%s), attempt %d: %s -> %s%s", self.site, self.account, self.attempt,
                     self.state, state, f" ({reason})" if reason else "")
            self.history.append(f"{state}: {reason}" if reason else state)
        self.state, self.reason = state, reason

    def view(self) -> dict[str, Any]:
        return {"site": self.site, "account": self.account, "state": self.state, "attempt": self.attempt,
                "attempts": self.attempts, "reason": self.reason, "retry_at": self.retry_at}


def retry_delay(attempt: int, retries: int = RETRIES, after_s: float = RETRY_AFTER_S) -> float | None:
    """After a failed attempt (1-based): how long until the next one, or None when none is left."""
    return after_s if attempt <= retries else None


def failure_words(record: dict[str, Any] | None) -> str:
    """Why a call that ended unanswered failed, from its call record."""
    if record is None:
        return "the call left no record"
    reason = END_WORDS.get(record.get("end_reason") or "", record.get("end_reason") or "ended")
    code = record.get("result_code")
    return f"{reason} (SIP {code})" if code else reason


class EmergencyCalls:
    def __init__(self, app: web.Application, retries: int = RETRIES, retry_after_s: float = RETRY_AFTER_S):
        self.app = app
        self.retries, self.retry_after_s = retries, retry_after_s
        self.tasks = TaskGroup("emergency calls")
        self._running: set[asyncio.Task[Any]] = set()
        self.calls: dict[str, dict[str, CallProgress]] = {}  # session -> site -> progress

    def start(self, session: dict[str, Any], phones: dict[str, str]) -> None:
        """Dial every (site → SIP account) of a session that has just opened; returns at once."""
        mine = self.calls.setdefault(session["id"], {})
        for site, account in phones.items():
            p = mine[site] = CallProgress(site, account, attempts=self.retries + 1)
            task = self.tasks.spawn(self._call(session, p), f"call to {site} for {session['id']}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def status(self, session_id: str) -> dict[str, dict[str, Any]]:
        out = {}
        for site, p in self.calls.get(session_id, {}).items():
            if p.state == "answered" and not self._connected(p.call_id):
                p.to("ended", "hung up")
            out[site] = p.view()
        return out

    async def _call(self, session: dict[str, Any], p: CallProgress) -> None:
        for attempt in range(1, self.retries + 2):
            p.attempt, p.retry_at = attempt, None
            p.to("calling")
            if not await self._attempt(session, p):
                return  # answered, or nothing another attempt could change
            delay = retry_delay(attempt, self.retries, self.retry_after_s)
            if delay is None:
                break
            p.retry_at = time.time() + delay
            p.to("retrying", p.reason)
            await asyncio.sleep(delay)  # the spacing between attempts, not a wait for a state
        p.retry_at = None
        p.to("failed", p.reason)

    async def _attempt(self, session: dict[str, Any], p: CallProgress) -> bool:
        """One call; True when it failed in a way another attempt may mend (p.reason says why)."""
        service = self.app.get(SIP_SERVICE)
        if service is None:
            p.to("failed", "the SIP service is not running (confctl serve --sip-port)")
            return False
        conf = await SessionConferences(self.app).by_number(session.get("dial_in") or "")
        if conf is None or not conf.active:
            p.to("failed", "the emergency is over")
            return False
        try:
            p.call_id = await service.dial_out(conf, p.account, session["dial_in"])  # type: ignore[attr-defined]
        except CallRejected as r:
            if "already connected" in r.reason:
                p.to("answered", "the site was already connected")
                return False
            p.reason = f"{r.reason} (SIP {r.status})"
            return True
        except PermissionError as exc:
            p.to("failed", str(exc))
            return False
        except LookupError as exc:  # not registered (any more): it may register before the next attempt
            p.reason = str(exc)
            return True
        while True:
            live = self._live(p.call_id)
            if live == "answered":
                p.to("answered")
                return False
            if live is None:
                break
            p.to(live)
            await asyncio.sleep(WATCH_S)
        record = await self._record(session["id"], p)
        for _ in range(int(RECORD_WAIT_S / WATCH_S)):  # the gateway closes the record just after the call
            if record is None or record.get("answered_at") or record.get("ended_at"):
                break
            await asyncio.sleep(WATCH_S)
            record = await self._record(session["id"], p)
        if record is not None and record.get("answered_at"):
            p.to("answered")  # answered and gone already: status() says it ended
            return False
        p.reason = failure_words(record)
        return True

    def _live(self, call_id: str | None) -> str | None:
        """calling | ringing (a provisional answer came) | answered; None once it is neither."""
        gateway = self.app.get(SIP_GATEWAY)
        endpoint = self.app.get(SIP_ENDPOINT)
        if gateway is None or endpoint is None or call_id is None:
            return None
        for key, out in list(gateway.outgoing.items()):  # type: ignore[attr-defined]
            if out.request.header("Call-ID") == call_id:
                tx = next((t for t in endpoint.client_tx.values() if id(t) == key), None)  # type: ignore[attr-defined]
                return "ringing" if tx is not None and tx.state is State.PROCEEDING else "calling"
        return "answered" if self._connected(call_id) else None

    def _connected(self, call_id: str | None) -> bool:
        gateway = self.app.get(SIP_GATEWAY)
        return gateway is not None and any(c.call_id == call_id for c in list(gateway.calls.values()))  # type: ignore[attr-defined]

    async def _record(self, session_id: str, p: CallProgress) -> dict[str, Any] | None:
        rows = await run_read(self.app, CallRecords(self.app[BOOKINGS].engine).list, session_id, 50, site=p.site, kind="sip")
        return next((r for r in rows if r["call_id"] == p.call_id), None)

    async def close(self) -> None:
        for t in list(self._running):
            t.cancel()
        await self.tasks.close()


EMERGENCY_CALLS = web.AppKey("emergency_calls", EmergencyCalls)


async def registered_phones(app: web.Application, sites: list[str], now: int) -> dict[str, str]:
    """A registered SIP account per site (the first found with a binding): what "call them" dials."""
    sip = app.get(SIP_STORE)
    if sip is None:
        return {}
    out: dict[str, str] = {}
    for a in await run_read(app, sip.accounts):  # type: ignore[attr-defined]
        if a.site in sites and a.site not in out and await run_read(app, sip.bindings, a.username, now):  # type: ignore[attr-defined]
            out[a.site] = a.username
    return out


async def owned(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the SIP service's, so it closes first): calls are cancelled and awaited."""
    app[EMERGENCY_CALLS] = calls = EmergencyCalls(app)
    try:
        yield
    finally:
        await calls.close()
