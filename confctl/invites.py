"""Invites in the app: the facts an invite needs (read from the stores), the mail sender the app owns when
`confctl serve --smtp URL` is given, `notify` for the booking handlers, its status route and metrics."""
from __future__ import annotations

import logging
from typing import Any, AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from confctl.api.route import PEOPLE, READERS, Route
from confctl.auth import require
from confctl.invite_calendar import InviteFacts
from confctl.invite_mail import OutgoingInvite, compose_invites, sip_domain
from confctl.invite_sender import InviteJob, InviteSender
from confctl.join_tokens import mint
from confctl.keys import BOOKINGS, JOIN_SECRET, SETTINGS, SIP_ENDPOINT, USER_STORE, run_read
from rooms.topology import Topology

log = logging.getLogger("confctl.invites")

INVITES = web.AppKey("invites", InviteSender)  # present only with --smtp


async def invite_facts(app: web.Application, session: dict[str, Any], origin: str | None,
                       topo: Topology | None = None) -> InviteFacts:
    """Names and addresses of the session's people and sites, the SIP dial-in's host, and every site's join
    link when `origin` is given (an invite shows at most one of them: confctl/invite_calendar.py)."""
    topo = topo or await run_read(app, app[BOOKINGS].topology)
    organizer = await run_read(app, app[USER_STORE].by_id, session["organizer_id"])
    s = app[SETTINGS]
    sites = [x["site"] for x in session["sites"]]
    links = {x: f"{origin}/join?token={mint(app[JOIN_SECRET], session['id'], x)}" for x in sites} if origin else {}
    return InviteFacts(
        names={x: topo.sites[x].name for x in topo.sites},
        contacts={x: topo.sites[x].contact for x in topo.sites if topo.sites[x].contact},  # type: ignore[misc]
        organizer_name=organizer.name if organizer else None,
        organizer_email=organizer.email if organizer else None,
        join_urls=links, sip_domain=sip_domain(_sip_port(app), s.sip_host, s.sip_advertise, s.public_url))


def _sip_port(app: web.Application) -> int | None:
    """The SIP service's port as bound (--sip-port 0 binds any), None when SIP is off."""
    endpoint = app.get(SIP_ENDPOINT)
    transport = getattr(endpoint, "transport", None)
    return None if transport is None else int(transport.get_extra_info("sockname")[1])


def notify(request: web.Request, session: dict[str, Any], before: dict[str, Any] | None = None) -> None:
    """After a booking, change or cancel: queue its invites (nothing without --smtp). Returns at once and
    never raises: mail that cannot go is logged and counted, the booking stands."""
    sender = request.app.get(INVITES)
    if sender is None:
        return
    try:
        kept = {x["site"] for x in session["sites"]}
        removed = tuple(x for x in (before or {}).get("sites", []) if x["site"] not in kept)
        sender.submit(InviteJob(session, str(request.url.origin()), removed))
    except Exception:  # the booking is made: a bug here must not turn it into a 500
        log.exception("invite mail for session %s not queued", session.get("id"))


async def invite_mail(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sender's worker runs while the app does; at shutdown the queue is sent (bounded)."""
    settings = app[SETTINGS]
    if settings.smtp is None:
        yield
        return

    async def compose(job: InviteJob) -> list[OutgoingInvite]:
        facts = await invite_facts(app, job.session, job.origin)
        return compose_invites(job.session, facts, settings.smtp.sender, job.removed)  # type: ignore[union-attr]

    sender = InviteSender(settings.smtp, compose, settings.smtp_retry_delays_s)
    sender.start()
    app[INVITES] = sender
    log.info("invites mailed through %s from %s", settings.smtp.shown(), settings.smtp.sender)
    try:
        yield
    finally:
        await sender.close()


NOT_MAILED = ("Invites are not mailed: this server runs without --smtp. Download the calendar invite and send "
              "it yourself (each site's own invite carries its join link).")


async def mail_status(request: web.Request) -> web.Response:
    user = require(request)
    sender = request.app.get(INVITES)
    if sender is None:
        return web.json_response({"mailed": False, "note": NOT_MAILED})
    body: dict[str, Any] = {"mailed": True, "from": sender.config.sender,
                            "note": "Invites are mailed to each site's contact (its own join link only) and to the "
                                    "organizer (the whole session, no links) on booking, every change and cancel."}
    if user.role.value in READERS:  # the relay and its failures are the operators' business
        body.update(relay=sender.config.shown(), **sender.status())
    return web.json_response(body)


def invite_metrics(app: web.Application) -> bytes:
    """The invite mail counters in Prometheus's text format, appended to /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(app.get(INVITES)))
    return generate_latest(registry)


class _Collector:
    def __init__(self, sender: InviteSender | None):
        self.sender = sender

    def collect(self) -> Any:
        yield GaugeMetricFamily("confctl_invite_mail_enabled", "1 when invites are mailed (confctl serve --smtp)",
                                value=0 if self.sender is None else 1)
        if self.sender is None:
            return
        mails = CounterMetricFamily("confctl_invite_mails", "Invite e-mails by outcome since this process started: "
                                    "sent, failed (given up after retries or refused), retried, dropped (queue full)",
                                    labels=["outcome"])
        for outcome in ("sent", "failed", "retried", "dropped"):
            mails.add_metric([outcome], self.sender.counts[outcome])
        yield mails
        yield GaugeMetricFamily("confctl_invite_mail_queued", "Bookings, changes and cancels whose invites wait "
                                "to be mailed", value=self.sender.status()["queued"])


routes = [
    Route("GET", "/api/invite-mail", mail_status, "Whether invites are mailed (confctl serve --smtp), and for "
          "operators the relay and its counts", PEOPLE, responses={200: "{mailed, note, from?, relay?, sent?, failed?}"}),
]
