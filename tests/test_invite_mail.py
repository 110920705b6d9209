"""Invites that arrive: a real SMTP server in-process (aiosmtpd on a port of its own), what it received read
back with the email and icalendar parsers. Three sites booked: three site invites, each with its own join
link only, and the organizer's without links; a change sends SEQUENCE 1, a cancel METHOD:CANCEL. A relay
that is down does not fail the booking, and the failure shows in /metrics."""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from icalendar import Calendar
from prometheus_client.parser import text_string_to_metric_families

from confctl.invite_mail import SmtpConfig
from rooms.store.users import Role
from tests.conftest import add_users, booking, tomorrow_at

ORGANIZER = "olga@jl.example"
SITES = ["jl", "cc", "cc-nongan"]  # the demo topology's contacts: <site>@jl.example


@dataclass
class Inbox:
    """aiosmtpd's handler: every message as the relay received it; RCPT to `refuse` gets 550."""
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    async def wait_for(self, n: int, deadline_s: float = 15) -> list[tuple[list[str], EmailMessage]]:
        end = time.monotonic() + deadline_s
        while len(self.received) < n:
            assert time.monotonic() < end, f"{len(self.received)} of {n} messages arrived"
            await asyncio.sleep(0.02)
        return self.received[:n]


@pytest.fixture
async def relay():
    inbox = Inbox()
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(inbox), "127.0.0.1", 0)
    inbox.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    yield inbox
    server.close()
    await server.wait_closed()


async def _client(aiohttp_client, db_url: str, port: int):  # type: ignore[no-untyped-def]
    from confctl.app import make_app
    from confctl.config import Settings
    from rooms.topology import demo_topology_path
    settings = Settings(topology_file=demo_topology_path(), db_url=db_url, sip_port=0, sip_workers=0,
                        smtp=SmtpConfig("127.0.0.1", port, "plain", "confctl@jl.example"),
                        smtp_retry_delays_s=(0.05, 0.05))
    client = await aiohttp_client(make_app(settings))
    tokens = add_users(db_url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None), ("ada", Role.ADMIN, None)])
    client.h = lambda who: {"Authorization": f"Bearer {tokens[who]}"}
    me = await (await client.get("/api/me", headers=client.h("olga"))).json()
    r = await client.patch(f"/api/users/{me['id']}", json={"email": ORGANIZER}, headers=client.h("ada"))
    assert r.status == 200 and (await r.json())["user"]["email"] == ORGANIZER
    return client


def _invite(msg: EmailMessage) -> tuple[str, Any]:
    """(the iMIP method of the text/calendar part, its one VEVENT)."""
    (part,) = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    cal = Calendar.from_ical(part.get_content())
    assert part.get_param("method") == str(cal["method"])
    (event,) = cal.walk("VEVENT")
    return str(cal["method"]), event


def _everything(msg: EmailMessage) -> str:
    """Every part as its reader sees it: decoded from base64 or quoted-printable, the calendar unfolded."""
    parts = [p.get_content() for p in msg.walk() if not p.is_multipart()]
    text = "\n".join(p.decode() if isinstance(p, bytes) else p for p in parts)
    return text.replace("\r\n ", "").replace("\n ", "")


def _by_recipient(batch: list[tuple[list[str], EmailMessage]]) -> dict[str, EmailMessage]:
    out = {}
    for rcpt, msg in batch:
        (to,) = rcpt
        assert msg["To"] == to
        out[to] = msg
    return out


async def _metric(api, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    text = await (await api.get("/metrics", headers=api.h("opal"))).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no {name} {labels} in /metrics")


async def test_each_site_gets_its_own_invite_the_organizer_the_whole_session_and_changes_and_cancels_follow(
        aiohttp_client, db_url, relay):
    api = await _client(aiohttp_client, db_url, relay.port)
    r = await api.post("/api/sessions", json=booking(SITES, profile="sd"), headers=api.h("olga"))
    assert r.status == 201
    s = await r.json()
    links = s["join_urls"]
    assert set(links) == set(SITES)
    sip = f"sip:{s['dial_in']}@127.0.0.1:"

    booked = _by_recipient(await relay.wait_for(4))
    assert set(booked) == {f"{x}@jl.example" for x in SITES} | {ORGANIZER}
    for site in SITES:
        msg = booked[f"{site}@jl.example"]
        raw = _everything(msg)
        method, ev = _invite(msg)
        assert method == "REQUEST" and int(ev["sequence"]) == 0 and msg["Subject"].startswith("Invitation: ")
        assert str(ev["url"]) == links[site]
        assert [x for x in SITES if links[x].split("token=")[1] in raw] == [site] and links[site] in raw
        assert str(ev["organizer"]) == f"mailto:{ORGANIZER}" and ev["organizer"].params["x-confctl-user"] == s["organizer_id"]
        attendees = {a.params["x-confctl-site"]: str(a) for a in ev["attendee"]}
        assert attendees == {x: f"mailto:{x}@jl.example" for x in SITES}
        assert sip in str(ev["location"]) and sip in str(ev["description"])
        assert msg["Reply-To"] == ORGANIZER
    whole = booked[ORGANIZER]
    method, ev = _invite(whole)
    assert method == "REQUEST" and "url" not in ev and "token=" not in _everything(whole)
    assert {a.params["x-confctl-site"] for a in ev["attendee"]} == set(SITES)
    assert ev.decoded("dtstart") == tomorrow_at(10)

    moved = await api.patch(f"/api/sessions/{s['id']}", json={"start": tomorrow_at(15).isoformat(),
                                                              "end": tomorrow_at(16).isoformat()}, headers=api.h("olga"))
    assert moved.status == 200
    changed = _by_recipient((await relay.wait_for(8))[4:])
    assert set(changed) == set(booked)
    for to, msg in changed.items():
        method, ev = _invite(msg)
        assert method == "REQUEST" and int(ev["sequence"]) == 1 and ev.decoded("dtstart") == tomorrow_at(15), to
        assert msg["Subject"].startswith("Updated invitation: ")

    assert (await api.delete(f"/api/sessions/{s['id']}", headers=api.h("olga"))).status == 200
    cancelled = _by_recipient((await relay.wait_for(12))[8:])
    assert set(cancelled) == set(booked)
    for to, msg in cancelled.items():
        method, ev = _invite(msg)
        assert method == "CANCEL" and int(ev["sequence"]) == 2 and str(ev["status"]) == "CANCELLED", to
        assert "token=" not in _everything(msg)  # no live link in a cancel
    assert await _metric(api, "confctl_invite_mails_total", outcome="sent") == 12
    assert await _metric(api, "confctl_invite_mails_total", outcome="failed") == 0


async def test_a_relay_that_is_down_does_not_fail_the_booking_and_the_failure_is_counted(aiohttp_client, db_url):
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = await _client(aiohttp_client, db_url, port)
    r = await api.post("/api/sessions", json=booking(SITES, profile="sd"), headers=api.h("olga"))
    assert r.status == 201 and (await r.json())["join_urls"]

    end = time.monotonic() + 15
    while (status := await (await api.get("/api/invite-mail", headers=api.h("opal"))).json())["failed"] < 4:
        assert time.monotonic() < end, status
        await asyncio.sleep(0.02)
    assert status["sent"] == 0 and status["retried"] == 4 * 2 and "Connect" in status["last_error"]
    assert await _metric(api, "confctl_invite_mails_total", outcome="failed") == 4
    seen = await (await api.get("/api/invite-mail", headers=api.h("olga"))).json()
    assert seen["mailed"] is True and "relay" not in seen  # the relay's state is for operators


async def test_a_mailbox_the_relay_refuses_is_given_up_at_once_and_the_others_arrive(aiohttp_client, db_url, relay):
    relay.refuse.add("cc@jl.example")
    api = await _client(aiohttp_client, db_url, relay.port)
    assert (await api.post("/api/sessions", json=booking(SITES, profile="sd"), headers=api.h("olga"))).status == 201
    got = _by_recipient(await relay.wait_for(3))
    assert set(got) == {"jl@jl.example", "cc-nongan@jl.example", ORGANIZER}
    end = time.monotonic() + 5
    while await _metric(api, "confctl_invite_mails_total", outcome="failed") < 1:
        assert time.monotonic() < end
        await asyncio.sleep(0.02)
    assert await _metric(api, "confctl_invite_mails_total", outcome="retried") == 0  # a 550 is final


async def test_without_smtp_nothing_is_mailed_and_the_server_says_so(api):
    status = await (await api.get("/api/invite-mail", headers=api.h("olga"))).json()
    assert status["mailed"] is False and "--smtp" in status["note"]
    text = await (await api.get("/metrics", headers=api.h("opal"))).text()
    assert "confctl_invite_mail_enabled 0.0" in text


async def test_an_address_is_checked_where_people_are_made_and_changed(api):
    bad = await api.post("/api/users", json={"name": "eve", "role": "organizer", "email": "eve.jl.example"},
                         headers=api.h("ada"))
    assert bad.status == 422 and "@-sign" in str((await bad.json())["detail"])
    ok = await api.post("/api/users", json={"name": "eve", "role": "organizer", "email": "Eve@JL.example"},
                        headers=api.h("ada"))
    assert ok.status == 201
    eve = (await ok.json())["user"]
    assert eve["email"] == "Eve@jl.example"  # the domain in normal form
    for body in ({"email": "eve@localhost"}, {"email": 7}, {"mail": "x@jl.example"}, []):
        r = await api.patch(f"/api/users/{eve['id']}", json=body, headers=api.h("ada"))
        assert r.status == 422 and (await r.json())["error"], body
    cleared = await api.patch(f"/api/users/{eve['id']}", json={"email": None}, headers=api.h("ada"))
    assert (await cleared.json())["user"]["email"] is None
    assert (await api.patch("/api/users/usr_nobody", json={"email": None}, headers=api.h("ada"))).status == 404
    assert (await api.patch(f"/api/users/{eve['id']}", json={"email": None}, headers=api.h("olga"))).status == 403
