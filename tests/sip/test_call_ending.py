"""Calls end even when the phone never hangs up, and every refusal gives back what it took.

Real UDP phones (tests/sip/phone.py) against `confctl`'s app: the service sends the BYE, the
call record says why.
"""
from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from confctl.app import make_app
from confctl.config import Settings
from confctl.keys import MEDIA_NODE
from rooms.store.calls import CallRecords
from rooms.store.engine import make_engine, write_transaction
from rooms.store.sip import SipStore
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from sip_stub import transactions
from sip_stub.fields import parse_auth
from rooms.end_reason import EndReason
from sip_stub.call_policy import CallFacts, ConferenceFacts, end_reason, session_interval
from sip_stub.message import Request, Response, parse_message
from tests.conftest import add_users
from tests.media.peers import until
from tests.sip.phone import Phone
from tests.sip.test_security import Registrar
from tests.sip.test_sipp import bound_sip_port

NOW = datetime.now(timezone(timedelta(hours=8)))


@pytest.fixture
async def gw(request, aiohttp_client, tmp_path):
    extra = getattr(request, "param", {})
    url = f"sqlite:///{tmp_path}/end.db"
    settings = Settings(topology_file=demo_topology_path(), db_url=url, sip_port=0, recordings_dir=tmp_path / "rec",
                        sip_rtp_timeout_s=1.0, sip_watch_s=0.1, **extra)
    client = await aiohttp_client(make_app(settings))
    port = bound_sip_port(client.server.app)
    engine = make_engine(url)
    SipStore(engine).add_account("desk-sp", "sp", "phone-pass-1", "confctl")
    client.h = {"Authorization": f"Bearer {add_users(url, [('olga', Role.ORGANIZER, None)])['olga']}"}
    client.sip_port, client.engine, client.db_url = port, engine, url
    yield client
    engine.dispose()


async def book(client, sites, start=None, minutes=60):
    start = start or NOW
    r = await client.post("/api/sessions", headers=client.h, json={
        "title": "Phone drill", "host_site": sites[0], "sites": sites[1:], "start": start.isoformat(timespec="seconds"),
        "end": (start + timedelta(minutes=minutes)).isoformat(timespec="seconds"), "profile": "sd"})
    assert r.status == 201, await r.text()
    return await r.json()


async def bye_from_service(phone: Phone) -> Request:
    """Wait for the service's BYE and answer it 200, as a phone does."""
    from sip_stub.builders import make_response
    while True:
        msg = parse_message(await phone.sip.recv(15))
        if isinstance(msg, Request) and msg.method == "BYE":
            phone.sip.send(bytes(make_response(msg, 200, "OK")), phone.server)
            return msg


async def ended(client, session_id: str) -> dict:
    records = CallRecords(client.engine)
    await until(lambda: records.list(session=session_id) and records.list(session=session_id)[0]["ended_at"],
                what="the call record closed")
    return records.list(session=session_id)[0]


async def test_a_phone_whose_rtp_stops_is_sent_bye_and_its_record_closed(gw):
    s = await book(gw, ["jl", "sp"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 200
        room = gw.app[MEDIA_NODE].room_of(s["id"], "sp")
        assert "sp" in room.phones
        for t in phone._tasks:  # the phone loses power: no RTP, no BYE
            t.cancel()
        bye = await bye_from_service(phone)
        assert "rtp_timeout" in (bye.header("Reason") or "")
        assert bye.header("Call-ID") == phone.call_id
    finally:
        phone.close()
    record = await ended(gw, s["id"])
    assert record["end_reason"] == "rtp_timeout" and record["result_code"] == 200
    assert not gw.app[MEDIA_NODE].holds(s["id"])  # the room it opened is gone with it


@pytest.mark.parametrize("change, reason", [("cancel", "session_cancelled"), ("drop_site", "site_removed")])
async def test_cancelling_the_session_or_removing_the_site_hangs_up_the_phone(gw, change, reason):
    s = await book(gw, ["jl", "sp", "ly"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 200
        if change == "cancel":
            r = await gw.delete(f"/api/sessions/{s['id']}", headers=gw.h)
        else:
            r = await gw.patch(f"/api/sessions/{s['id']}", headers=gw.h, json={"sites": ["ly"]})
        assert r.status == 200, await r.text()
        bye = await bye_from_service(phone)
        assert reason in (bye.header("Reason") or "")
    finally:
        phone.close()
    assert (await ended(gw, s["id"]))["end_reason"] == reason


@pytest.mark.parametrize("gw", [{"join_margin_s": 0}], indirect=True)
async def test_the_end_of_the_booked_window_hangs_up(gw):
    end = datetime.now(timezone.utc) + timedelta(seconds=3)  # a window (no margin) ending in 3 s
    s = await book(gw, ["jl", "sp"], start=end - timedelta(minutes=10), minutes=10)
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 200
        bye = await bye_from_service(phone)
        assert "session_ended" in (bye.header("Reason") or "")
    finally:
        phone.close()
    assert (await ended(gw, s["id"]))["end_reason"] == "session_ended"


async def test_shutdown_sends_bye_to_every_call(gw):
    s = await book(gw, ["jl", "sp"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 200
        waiting = asyncio.ensure_future(bye_from_service(phone))
        await gw.close()  # confctl serve stopping
        bye = await asyncio.wait_for(waiting, 15)
        assert "shutdown" in (bye.header("Reason") or "")
    finally:
        phone.close()
    record = CallRecords(gw.engine).list(session=s["id"])[0]
    assert record["end_reason"] == "shutdown" and record["ended_at"]


async def test_a_2xx_never_acked_is_followed_by_bye(gw, monkeypatch):
    monkeypatch.setattr(transactions, "T1", 0.02)  # timer L = 64*T1: 1.3 s instead of 32 s
    s = await book(gw, ["jl", "sp"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    build = phone._request
    # the phone ACKs the 401 (its own _ack) but never the 200: its ACK request is never sent
    phone._request = lambda method, *a, **kw: b"" if method == "ACK" else build(method, *a, **kw)  # noqa: E731
    try:
        assert (await phone.call(s["dial_in"])).status == 200
        bye = await bye_from_service(phone)
        assert "no_ack" in (bye.header("Reason") or "")
    finally:
        phone.close()
    assert (await ended(gw, s["id"]))["end_reason"] == "no_ack"


async def test_session_timers_are_offered_and_too_small_intervals_refused(gw):
    s = await book(gw, ["jl", "sp"])
    for expires, status in (("30", 422), ("120;refresher=uac", 200)):
        phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
        orig = phone._request
        phone._request = lambda method, uri, branch, extra="", *a, **kw: orig(  # noqa: E731
            method, uri, branch, extra + (f"Session-Expires: {expires}\r\nSupported: timer\r\n"
                                          if method == "INVITE" else ""), *a, **kw)
        try:
            final = await phone.call(s["dial_in"])
            assert final.status == status
            if status == 422:
                assert final.header("Min-SE") == "90"
            else:
                assert final.header("Session-Expires") == "120;refresher=uac" and final.header("Require") == "timer"
                assert (await phone.hang_up()).status == 200
        finally:
            phone.close()


def test_the_end_decision_on_its_own():
    conf = ConferenceFacts(True, frozenset({"jl", "sp"}), ((1000.0, 5000.0),))
    alive = CallFacts("sp", True, last_rtp_at=100.0, session_deadline=None)
    assert end_reason(alive, conf, 2000, 110) is None
    assert end_reason(alive, conf, 2000, 131) is EndReason.RTP_TIMEOUT
    on_hold = CallFacts("sp", False, last_rtp_at=0.0, session_deadline=None)  # inactive: silence is expected
    assert end_reason(on_hold, conf, 2000, 500) is None
    assert end_reason(alive, conf, 5001, 110) is EndReason.SESSION_ENDED
    assert end_reason(alive, None, 2000, 110) is EndReason.SESSION_CANCELLED
    assert end_reason(alive, ConferenceFacts(True, frozenset({"jl"}), conf.windows), 2000, 110) is EndReason.SITE_REMOVED
    timed = CallFacts("sp", True, 100.0, session_deadline=105.0)
    assert end_reason(timed, conf, 2000, 106) is EndReason.SESSION_TIMER
    assert session_interval("1800;refresher=uac") == 1800 and session_interval("60") == "too_small"
    assert session_interval("99999") == 3600 and session_interval(None) is None


@pytest.mark.parametrize("gw, expected", [({"sip_host": "0.0.0.0"}, "127.0.0.1"),
                                          ({"sip_host": "0.0.0.0", "sip_advertise": "192.0.2.7"}, "192.0.2.7")],
                         indirect=["gw"])
async def test_the_sdp_names_an_address_phones_can_reach(gw, expected):
    s = await book(gw, ["jl", "sp"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        ok = await phone.call(s["dial_in"])
        assert ok.status == 200
        assert f"c=IN IP4 {expected}" in ok.body.decode() and "0.0.0.0" not in ok.body.decode()
        assert f"@{expected}:" in ok.header("Contact")
        await phone.hang_up()
    finally:
        phone.close()


async def test_a_488_after_the_room_opened_gives_the_room_and_the_slot_back(gw):
    s = await book(gw, ["jl", "sp"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    phone.sdp = lambda: (b"v=0\r\no=p 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                         b"m=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
    try:
        assert (await phone.call(s["dial_in"])).status == 488
    finally:
        phone.close()
    assert not gw.app[MEDIA_NODE].holds(s["id"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 200  # not "486 already connected"
        await phone.hang_up()
    finally:
        phone.close()


async def test_a_cancel_while_the_invite_is_authenticated_cancels_it(gw):
    s = await book(gw, ["jl", "sp"])
    phone = await Phone("desk-sp", "phone-pass-1", gw.sip_port).open()
    try:
        uri = f"sip:{s['dial_in']}@127.0.0.1:{gw.sip_port}"
        phone.cseq = 1
        phone.sip.send(phone._request("INVITE", uri, "z9hG4bKc1", body=phone.sdp()), gw.sip_port)
        challenge = await phone.final("INVITE")
        phone.sip.send(phone._ack(uri, "z9hG4bKc1", challenge), gw.sip_port)
        c = parse_auth(next(v for v in challenge.header_all("WWW-Authenticate") if "MD5" in v))[1]
        h = lambda x: hashlib.md5(x.encode()).hexdigest()  # noqa: E731
        resp = h(f"{h('desk-sp:' + c['realm'] + ':phone-pass-1')}:{c['nonce']}:00000001:x:auth:{h('INVITE:' + uri)}")
        auth = (f'Authorization: Digest username="desk-sp", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{uri}", '
                f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="x"\r\n')
        phone.cseq = 2
        invite = phone._request("INVITE", uri, "z9hG4bKc2", auth, phone.sdp())
        cancel = phone._request("CANCEL", uri, "z9hG4bKc2", cseq=2)
        phone.sip.send(invite, gw.sip_port)
        phone.sip.send(cancel, gw.sip_port)  # right behind it: the INVITE is still being authenticated
        answers = {}
        while len(answers) < 2:
            msg = parse_message(await phone.sip.recv(10))
            if isinstance(msg, Response) and msg.status >= 200:
                answers[msg.cseq()[1]] = msg.status
        assert answers == {"CANCEL": 200, "INVITE": 487}
    finally:
        phone.close()
    assert not gw.app[MEDIA_NODE].holds(s["id"])


async def test_a_register_during_a_database_fault_gets_500_with_retry_after(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/f.db"
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=0,
                                                    db_lock_wait_s=0.3)))
    port = bound_sip_port(client.server.app)
    engine = make_engine(url)
    SipStore(engine).add_account("desk-101", "cc-nongan", "s3cret-pass", "confctl")
    from tests.sip.udp_client import udp_client
    ua = await udp_client()
    try:
        reg = Registrar(ua, port)
        c = await reg.challenge()
        with write_transaction(engine):  # the database is held by someone else
            ua.send(reg.request(reg.answer(c, "s3cret-pass")), port)
            r = await reg.final()
        assert r.status == 500 and r.header("Retry-After")
        ua.send(reg.request(reg.answer(await reg.challenge(), "s3cret-pass")), port)
        assert (await reg.final()).status == 200  # and afterwards it works
    finally:
        ua.transport.close()
        engine.dispose()


async def test_the_call_watchdog_shows_in_health(gw):
    body = await (await gw.get("/api/health")).json()
    assert body["ok"] is True and body["tasks"]["call watchdog"]["state"] == "running"
