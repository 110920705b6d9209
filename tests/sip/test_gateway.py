"""Phones dial a live session: audio crosses between the phone and a WebRTC participant, both ways."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from confctl.keys import MEDIA_NODE
from rooms.store.calls import CallRecords
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of
from tests.sip.baresip import Baresip
from tests.sip.phone import Phone
from tests.sip.test_sipp import bound_sip_port, free_udp_port
from tests.conftest import add_users


# Tests parametrized with "plane" run twice: the main process reading the SIP socket alone, and two
# worker processes reading it (REGISTER answered there; INVITE, ACK, BYE and responses relayed here).
WITH_WORKERS = pytest.mark.parametrize("plane", [0, 2], ids=["in-process", "2-workers"], indirect=True)


@pytest.fixture
async def plane(request, aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/gw.db"
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=0, recordings_dir=tmp_path / "rec",
                                                    sip_workers=getattr(request, "param", 0))))
    port = bound_sip_port(client.server.app)
    engine = make_engine(url)
    sip = SipStore(engine)
    sip.add_account("desk-sp", "sp", "phone-pass-1", "confctl")
    sip.add_account("desk-ly", "ly", "phone-pass-2", "confctl")
    client.h = {"Authorization": f"Bearer {add_users(url, [('olga', Role.ORGANIZER, None)])['olga']}"}
    client.sip_port = port
    client.engine = engine
    yield client
    engine.dispose()


async def browser_site(client, session, site, talking=False):
    """A site joining from a browser (a real aiortc peer through /ws); returns (socket, peer)."""
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(session, site)})
    await next_of(ws, "joined")
    peer = SitePeer(60, talking=talking)
    await ws.send_json({"type": "offer", "sdp": await peer.offer()})
    await peer.accept((await next_of(ws, "answer"))["sdp"])
    return ws, peer


async def book(client, sites, start):
    r = await client.post("/api/sessions", headers=client.h, json={
        "title": "Phone drill", "host_site": sites[0], "sites": sites[1:], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"})
    assert r.status == 201
    return await r.json()


@WITH_WORKERS
async def test_a_phone_and_a_browser_site_hear_each_other(plane):
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    assert s["dial_in"] and s["dial_in"].isdigit()
    ws, jl = await browser_site(plane, s, "jl", talking=True)
    phone = await Phone("desk-sp", "phone-pass-1", plane.sip_port).open()
    try:
        ok = await phone.call(s["dial_in"])
        assert ok.status == 200 and b"PCMU" in ok.body
        room = plane.app[MEDIA_NODE].room_of(s["id"], "sp")
        assert "sp" in room.phones
        # the phone hears the room (jl's tone, mixed), and the room hears the phone
        await until(lambda: phone.packets_heard > 50 and phone.heard_energy > 50 * 500, timeout=20,
                    what="room audio at the phone")
        await until(lambda: jl.audio_energy > 100_000, timeout=20, what="phone audio at the browser site")
        bye = await phone.hang_up()
        assert bye.status == 200
        await until(lambda: "sp" not in room.phones, what="phone removed from the room")
    finally:
        phone.close()
        await ws.close()
        await jl.close()
    records = CallRecords(plane.engine)
    def phone_calls() -> list[dict]:  # (the browser site's leg gets its own record when the loop writes it)
        return records.list(session=s["id"], kind="sip")
    await until(lambda: phone_calls() and phone_calls()[0]["ended_at"] is not None, what="call record closed")
    (record,) = phone_calls()
    assert record["result_code"] == 200 and record["end_reason"] == "bye" and record["site_id"] == "sp"
    assert record["answered_at"] and record["ended_at"] >= record["answered_at"]


@WITH_WORKERS
async def test_unknown_number_foreign_site_and_wrong_window_are_refused(plane):
    now = datetime.now(timezone(timedelta(hours=8)))
    s = await book(plane, ["jl", "sp"], now)
    later = await book(plane, ["jl", "sp"], now + timedelta(days=1))
    cases = [("desk-sp", "phone-pass-1", "999999999", 404), ("desk-ly", "phone-pass-2", s["dial_in"], 403),
             ("desk-sp", "phone-pass-1", later["dial_in"], 403), ("desk-sp", "wrong-pass", s["dial_in"], 403)]
    for user, password, number, status in cases:
        phone = await Phone(user, password, plane.sip_port).open()
        try:
            assert (await phone.call(number)).status == status, (user, number)
        finally:
            phone.close()
    records = CallRecords(plane.engine)
    # the record is completed just after the answer goes out
    await until(lambda: all(r["ended_at"] for r in records.list()), what="call records completed")
    assert sorted(r["result_code"] for r in records.list()) == [403, 403, 404]  # a bad password gets no record


@WITH_WORKERS
async def test_sipp_dials_in_plays_g711_from_a_pcap_and_hangs_up(plane, tmp_path):
    from tests.sip.test_sipp import sipp
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    ws, jl = await browser_site(plane, s, "jl", talking=False)
    try:
        inject = tmp_path / "caller.csv"
        inject.write_text("SEQUENTIAL\ndesk-sp;\n")
        rc, log = await sipp(plane.sip_port, "invite_pcap_auth.xml", "-s", s["dial_in"], "-inf", str(inject),
                             "-au", "desk-sp", "-ap", "phone-pass-1", "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
                             calls=1, rate=1, cwd=tmp_path)
        assert rc == 0, log
        assert jl.audio_energy > 10_000  # the pcap's audio reached the browser site through the room
    finally:
        await ws.close()
        await jl.close()
    records = CallRecords(plane.engine)
    def phone_calls() -> list[dict]:  # (the browser site's leg gets its own record when the loop writes it)
        return records.list(session=s["id"], kind="sip")
    await until(lambda: phone_calls() and phone_calls()[0]["ended_at"] is not None, what="call record closed")
    (record,) = phone_calls()
    assert record["result_code"] == 200 and record["end_reason"] == "bye"


async def test_baresip_calls_a_live_session_and_audio_flows_both_ways(plane, tmp_path):
    """A real UA (baresip): its sine tone reaches the browser site; the site's tone reaches baresip."""
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    ws, jl = await browser_site(plane, s, "jl", talking=True)
    phone = Baresip(tmp_path / "baresip", plane.sip_port, "desk-sp", "phone-pass-1")
    await phone.dial(s["dial_in"])
    try:
        try:
            await until(lambda: (r := plane.app[MEDIA_NODE].room_of(s["id"], "sp")) is not None and "sp" in r.phones,
                        timeout=30, what="baresip connected to the room")
            await until(lambda: jl.audio_energy > 100_000, timeout=20, what="baresip's tone at the browser site")
            await until(lambda: phone.recorded_bytes() > 48_000, timeout=20, what="baresip recording what it hears")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- baresip ---\n{phone.trace()}") from None
    finally:
        await phone.stop()
        await ws.close()
        await jl.close()
    assert phone.heard_rms() > 300, "baresip heard silence"


@WITH_WORKERS
async def test_dial_out_calls_a_registered_phone_into_the_live_session(plane):
    import asyncio
    from tests.sip.phone import Callee
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    ws, jl = await browser_site(plane, s, "jl", talking=True)
    phone = await Callee("desk-sp", "phone-pass-1", plane.sip_port).open()
    try:
        not_registered = await plane.post(f"/api/sessions/{s['id']}/dial-out", headers=plane.h, json={"account": "desk-sp"})
        assert not_registered.status == 409
        assert (await phone.register()).status == 200
        answering = asyncio.create_task(phone.answer_incoming())
        r = await plane.post(f"/api/sessions/{s['id']}/dial-out", headers=plane.h, json={"account": "desk-sp"})
        assert r.status == 202, await r.text()
        await answering
        # The phone's 200 is retransmitted as if our ACK were lost: the gateway ACKs it again.
        phone.sip.send(phone.last_ok, plane.sip_port)
        from sip_stub.message import Request, parse_message
        again = parse_message(await phone.sip.recv(5))
        assert isinstance(again, Request) and again.method == "ACK"
        await until(lambda: phone.heard_energy > 50 * 500, timeout=20, what="room audio at the called phone")
        await until(lambda: jl.audio_energy > 100_000, timeout=20, what="called phone's audio in the room")
        assert (await phone.hang_up_incoming()).status == 200
        foreign = await plane.post(f"/api/sessions/{s['id']}/dial-out", headers=plane.h, json={"account": "desk-ly"})
        assert foreign.status == 403
    finally:
        phone.close()
        await ws.close()
        await jl.close()
    records = CallRecords(plane.engine)
    await until(lambda: any(r["direction"] == "out" and r["ended_at"] for r in records.list(session=s["id"])))
    (out,) = [r for r in records.list(session=s["id"]) if r["direction"] == "out"]
    assert out["result_code"] == 200 and out["end_reason"] == "bye" and out["account"] == "desk-sp"


async def test_hold_with_reinvite_and_cancel_of_a_ringing_call(plane, monkeypatch):
    import asyncio

    from confctl.telephony import SessionConferences
    from tests.sip.phone import reinvite
    s = await book(plane, ["jl", "sp", "ly"], datetime.now(timezone(timedelta(hours=8))))
    phone = await Phone("desk-sp", "phone-pass-1", plane.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 200
        held = await reinvite(phone, "sendonly")
        assert held.status == 200 and b"a=recvonly" in held.body  # we stop sending while held
        call = next(iter(plane.app[MEDIA_NODE].room_of(s["id"], "sp").phones))
        assert call == "sp"
        resumed = await reinvite(phone, "sendrecv")
        assert resumed.status == 200 and b"a=sendrecv" in resumed.body
        assert (await phone.hang_up()).status == 200
    finally:
        phone.close()

    # A CANCEL while the gateway is still looking the number up ends the INVITE with 487.
    looking_up = asyncio.Event()
    release = asyncio.Event()
    original = SessionConferences.by_number

    async def slow(self, number):  # a fault-injecting fake: the lookup waits until the test says so
        looking_up.set()
        await release.wait()
        return await original(self, number)
    monkeypatch.setattr(SessionConferences, "by_number", slow)
    ringing = await Phone("desk-ly", "phone-pass-2", plane.sip_port).open()
    try:
        call_task = asyncio.create_task(ringing.call(s["dial_in"]))
        await asyncio.wait_for(looking_up.wait(), 10)
        invite_branch = f"z9hG4bKinv{ringing.cseq}"
        cancel = (f"CANCEL sip:{s['dial_in']}@127.0.0.1:{plane.sip_port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{ringing.sip.port};branch={invite_branch};rport\r\n"
                  f"From: <sip:desk-ly@127.0.0.1>;tag=ph1\r\nTo: <sip:{s['dial_in']}@127.0.0.1:{plane.sip_port}>\r\n"
                  f"Call-ID: {ringing.call_id}\r\nCSeq: {ringing.cseq} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        ringing.sip.send(cancel.encode(), plane.sip_port)
        final = await asyncio.wait_for(call_task, 10)  # the INVITE's final response
        release.set()
        assert final.status == 487
        records = CallRecords(plane.engine)
        await until(lambda: any(r["account"] == "desk-ly" and r["ended_at"] for r in records.list(session=s["id"])),
                    what="the cancelled call recorded")
        (rec,) = [r for r in records.list(session=s["id"]) if r["account"] == "desk-ly"]
        assert rec["result_code"] == 487 and rec["end_reason"] == "cancelled"
        room = plane.app[MEDIA_NODE].room_of(s["id"], "ly")
        assert room is None or "ly" not in room.phones
    finally:
        release.set()
        ringing.close()


async def test_a_phone_mutes_and_unmutes_itself_with_star_6(plane, tmp_path):
    """sipp presses *6 (RFC 4733 telephone-events) before it talks and again mid-way: the room hears only the second half."""
    import asyncio

    from tests.sip.test_sipp import sipp
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    ws, jl = await browser_site(plane, s, "jl", talking=False)
    inject = tmp_path / "caller.csv"
    inject.write_text("SEQUENTIAL\ndesk-sp;\n")
    call = asyncio.create_task(sipp(plane.sip_port, "invite_dtmf_mute.xml", "-s", s["dial_in"], "-inf", str(inject),
                                    "-au", "desk-sp", "-ap", "phone-pass-1", "-mi", "127.0.0.1",
                                    "-mp", str(free_udp_port()), calls=1, rate=1, cwd=tmp_path))  # ~14 s
    try:
        def phone():
            room = plane.app[MEDIA_NODE].room_of(s["id"], "sp")
            return room.phones.get("sp") if room is not None else None
        await until(lambda: phone() is not None and phone().muted, timeout=20, what="*6 muting the phone")
        heard, sent = jl.audio_energy, phone().samples_in
        await until(lambda: phone() is not None and not phone().muted, timeout=20, what="*6 again unmuting it")
        assert phone().samples_in - sent > 8000 * 2  # the phone talked for seconds while muted...
        assert jl.audio_energy - heard < 2_000, jl.audio_energy - heard  # ...and the room heard silence
        unmuted = jl.audio_energy
        rc, log = await call
        assert rc == 0, log
        assert jl.audio_energy - unmuted > 10_000  # unmuted, its voice reached the browser site
    finally:
        if not call.done():
            call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        await ws.close()
        await jl.close()


async def test_a_fault_while_admitting_a_call_answers_500_and_the_service_goes_on(plane, monkeypatch):
    from confctl.telephony import SessionConferences
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))

    async def broken(self, number):  # a fault-injecting fake: the session lookup fails
        raise RuntimeError("database went away")
    monkeypatch.setattr(SessionConferences, "by_number", broken)
    phone = await Phone("desk-sp", "phone-pass-1", plane.sip_port).open()
    try:
        assert (await phone.call(s["dial_in"])).status == 500  # at once, not after timer B's 32 s
        monkeypatch.undo()
        assert (await phone.call(s["dial_in"])).status == 200  # the next call is served
        assert (await phone.hang_up()).status == 200
    finally:
        phone.close()
    records = CallRecords(plane.engine)
    await until(lambda: len(records.list()) == 2 and all(r["ended_at"] for r in records.list()),
                what="both calls recorded")
    assert sorted((r["result_code"], r["end_reason"]) for r in records.list()) == [(200, "bye"), (500, "error")]
