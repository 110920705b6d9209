"""Mails invites off the request path: a queue and one worker task that the app owns and awaits at shutdown.

A booking only puts a job on the queue (never waits on, never fails because of, the mail relay). The
worker composes each job's messages (confctl/invite_mail.py) and sends them with aiosmtplib over one
connection; a relay that is down or answers 4xx is tried again after each of `retry_delays_s`, then
the message is given up, logged and counted (`confctl_invite_mails_total{outcome="failed"}` in
/metrics). A 5xx answer is final at once: sending it again gets the same answer. Jobs are sent in the
order they were made, so a session's REQUEST, its update and its CANCEL arrive in that order.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiosmtplib

from confctl.invite_mail import OutgoingInvite, SmtpConfig

log = logging.getLogger("confctl.invites")


@dataclass(frozen=True)
class InviteJob:
    session: dict[str, Any]  # as booked, changed or cancelled: its SEQUENCE and status say which
    origin: str  # where browsers reach us, for the join links
    removed: tuple[dict[str, Any], ...] = ()  # sites a change took out: they get a CANCEL


def is_final(exc: BaseException) -> bool:
    """A refusal that sending again cannot change: a 5xx reply (RFC 5321 §4.2.1), a wrong password."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(r.code >= 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code >= 500
    return False  # not reached, timed out, disconnected: the relay may be back soon


class InviteSender:
    def __init__(self, config: SmtpConfig, compose: Callable[[InviteJob], Awaitable[list[OutgoingInvite]]],
                 retry_delays_s: tuple[float, ...] = (2.0, 10.0, 60.0), queue_limit: int = 10_000,
                 timeout_s: float = 20.0):
        self.config = config
        self._compose = compose
        self.retry_delays_s = retry_delays_s
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[InviteJob] = asyncio.Queue(queue_limit)
        self._task: asyncio.Task[None] | None = None
        self.counts: Counter[str] = Counter()  # sent, failed, retried, dropped (queue full or shut down)
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="invite mail")

    def submit(self, job: InviteJob) -> bool:
        """Queue a job; False (logged, counted) when the queue is full or the sender stopped. Never raises."""
        if self._task is None or self._task.done():
            self.counts["dropped"] += 1
            log.warning("invite mail for session %s not queued: the sender is stopped", job.session.get("id"))
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.warning("invite mail for session %s dropped: %d jobs already wait for the relay %s",
                        job.session.get("id"), self._queue.qsize(), self.config.shown())
            return False
        return True

    def status(self) -> dict[str, Any]:
        return {"queued": self._queue.qsize(), **{k: self.counts[k] for k in ("sent", "failed", "retried", "dropped")},
                "last_error": self.last_error}

    async def close(self, drain_s: float = 10.0) -> None:
        """Send what is queued for up to `drain_s`, then stop; what is left is logged and counted as failed."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._queue.join()), drain_s)
        except asyncio.TimeoutError:
            pass
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        left = self._queue.qsize()
        if left:
            self.counts["failed"] += left
            log.warning("invite mail: %d job(s) unsent at shutdown (relay %s)", left, self.config.shown())

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._send_job(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad job must not stop the mail of every later booking
                self.counts["failed"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("invite mail for session %s failed", job.session.get("id"))
            finally:
                self._queue.task_done()

    async def _send_job(self, job: InviteJob) -> None:
        pending = await self._compose(job)
        for delay in (*self.retry_delays_s, None):
            pending = await self._attempt(pending, job)
            if not pending:
                return
            if delay is None:
                break
            self.counts["retried"] += len(pending)
            await asyncio.sleep(delay)
        self.counts["failed"] += len(pending)
        log.warning("invite mail for session %s: gave up on %s after %d tries: %s", job.session.get("id"),
                    ", ".join(i.to for i in pending), len(self.retry_delays_s) + 1, self.last_error)

    async def _attempt(self, invites: list[OutgoingInvite], job: InviteJob) -> list[OutgoingInvite]:
        """Sends over one connection; returns the invites to try again."""
        c = self.config
        smtp = aiosmtplib.SMTP(hostname=c.host, port=c.port, use_tls=c.security == "tls",
                               start_tls=c.security == "starttls", username=c.username, password=c.password,
                               timeout=self.timeout_s)
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return self._failed(invites, exc, job) if is_final(exc) else self._later(invites, exc)
        retry: list[OutgoingInvite] = []
        try:
            for n, invite in enumerate(invites):
                try:
                    await smtp.send_message(invite.message, sender=c.sender, recipients=[invite.to])
                except (aiosmtplib.SMTPException, OSError) as exc:
                    if is_final(exc):
                        self._failed([invite], exc, job)
                        continue
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    if not smtp.is_connected:  # the rest of this batch goes on the next try
                        return retry + [invite] + invites[n + 1:]
                    retry.append(invite)
                    continue
                self.counts["sent"] += 1
                log.info("invite for session %s (sequence %s) mailed to %s", job.session.get("id"),
                         job.session.get("sequence", 0), invite.to)
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
        return retry

    def _later(self, invites: list[OutgoingInvite], exc: BaseException) -> list[OutgoingInvite]:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("invite mail: relay %s: %s (will try again)", self.config.shown(), self.last_error)
        return invites

    def _failed(self, invites: list[OutgoingInvite], exc: BaseException, job: InviteJob) -> list[OutgoingInvite]:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.counts["failed"] += len(invites)
        log.warning("invite mail for session %s to %s refused by %s: %s", job.session.get("id"),
                    ", ".join(i.to for i in invites), self.config.shown(), self.last_error)
        return []
