"""Phones dial a live session: audio crosses between the phone and a WebRTC participant, both ways."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from confctl.app import make_app
from confctl.config import Settings
from confctl.keys import MEDIA_NODE
from rooms.store.calls import CallRecords
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of
from tests.sip.phone import Phone
from tests.sip.test_sipp import free_udp_port


@pytest.fixture
async def plane(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/gw.db"
    port = free_udp_port()
    client = await aiohttp_client(make_app(Settings(db_url=url, sip_port=port, recordings_dir=tmp_path / "rec")))
    engine = make_engine(url)
    sip = SipStore(engine)
    sip.add_account("desk-sp", "sp", "phone-pass-1", "confctl")
    sip.add_account("desk-ly", "ly", "phone-pass-2", "confctl")
    token = UserStore(engine).add("olga", Role.ORGANIZER, None, set(demo_topology().sites))[1]
    client.h = {"Authorization": f"Bearer {token}"}
    client.sip_port = port
    client.engine = engine
    yield client
    engine.dispose()


async def book(client, sites, start):
    r = await client.post("/api/sessions", headers=client.h, json={
        "title": "Phone drill", "host_site": sites[0], "sites": sites[1:], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"})
    assert r.status == 201
    return await r.json()


async def test_a_phone_and_a_browser_site_hear_each_other(plane):
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    assert s["dial_in"] and s["dial_in"].isdigit()
    ws = await plane.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(s, "jl")})
    await next_of(ws, "joined")
    jl = SitePeer(60, talking=True)
    await ws.send_json({"type": "offer", "sdp": await jl.offer()})
    await jl.accept((await next_of(ws, "answer"))["sdp"])
    phone = await Phone("desk-sp", "phone-pass-1", plane.sip_port).open()
    try:
        ok = await phone.call(s["dial_in"])
        assert ok.status == 200 and b"PCMU" in ok.body
        room = plane.app[MEDIA_NODE].rooms[s["id"]]
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
    await until(lambda: records.list(session=s["id"])[0]["ended_at"] is not None, what="call record closed")
    (record,) = records.list(session=s["id"])
    assert record["result_code"] == 200 and record["end_reason"] == "bye" and record["site_id"] == "sp"
    assert record["answered_at"] and record["ended_at"] >= record["answered_at"]


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


async def test_sipp_dials_in_plays_g711_from_a_pcap_and_hangs_up(plane, tmp_path):
    from tests.sip.test_sipp import sipp
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    ws = await plane.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(s, "jl")})
    await next_of(ws, "joined")
    jl = SitePeer(60)
    await ws.send_json({"type": "offer", "sdp": await jl.offer()})
    await jl.accept((await next_of(ws, "answer"))["sdp"])
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
    await until(lambda: records.list(session=s["id"])[0]["ended_at"] is not None, what="call record closed")
    (record,) = records.list(session=s["id"])
    assert record["result_code"] == 200 and record["end_reason"] == "bye"


async def test_baresip_calls_a_live_session_and_audio_flows_both_ways(plane, tmp_path):
    """A real UA (baresip): its sine tone reaches the browser site; the site's tone reaches baresip."""
    import asyncio
    import audioop
    import shutil
    import wave
    s = await book(plane, ["jl", "sp"], datetime.now(timezone(timedelta(hours=8))))
    ws = await plane.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token_of(s, "jl")})
    await next_of(ws, "joined")
    jl = SitePeer(60, talking=True)
    await ws.send_json({"type": "offer", "sdp": await jl.offer()})
    await jl.accept((await next_of(ws, "answer"))["sdp"])
    conf = tmp_path / "baresip"
    conf.mkdir()
    (conf / "config").write_text("\n".join([
        "poll_method epoll", f"sip_listen 127.0.0.1:{free_udp_port()}", "net_interface 127.0.0.1",
        "audio_player aubridge,nil", "audio_source ausine,440", "audio_alert aubridge,nil",
        "ausrc_srate 48000", "ausrc_channels 2", "module_path /usr/lib/baresip/modules",
        "module menu.so", "module g711.so", "module ausine.so", "module aubridge.so", "module sndfile.so",
        "module account.so", f"snd_path {conf}", ""]))
    (conf / "accounts").write_text(
        f"<sip:desk-sp@127.0.0.1:{plane.sip_port}>;auth_pass=phone-pass-1;regint=0;audio_codecs=PCMU,PCMA\n")
    try:
        proc = await asyncio.create_subprocess_exec(
            shutil.which("baresip") or "/usr/bin/baresip", "-f", str(conf), "-t", "8",
            "-e", f"/dial sip:{s['dial_in']}@127.0.0.1:{plane.sip_port}",
            cwd=conf, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        room = None
        await until(lambda: s["id"] in plane.app[MEDIA_NODE].rooms and "sp" in plane.app[MEDIA_NODE].rooms[s["id"]].phones,
                    timeout=15, what="baresip connected to the room")
        await until(lambda: jl.audio_energy > 100_000, timeout=15, what="baresip's tone at the browser site")
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await ws.close()
        await jl.close()
    heard = [p for p in conf.glob("*.wav") if "dec" in p.name]
    assert heard, out.decode(errors="replace")[-2000:]
    with wave.open(str(heard[0])) as w:
        pcm = w.readframes(w.getnframes())
        width = w.getsampwidth()
    assert audioop.rms(pcm, width) > 300, "baresip heard silence"
