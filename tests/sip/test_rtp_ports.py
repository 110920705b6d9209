"""--rtp-ports: the SIP gateway's RTP sockets lie in the range a firewall opens; a call that finds it full
gets 503 with the reason in words, and /metrics counts it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.test_ice_addressing import free_udp_range
from tests.sip.phone import Phone
from tests.sip.test_sipp import free_udp_port


async def test_phone_rtp_binds_in_the_range_and_a_call_finding_it_full_gets_503(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/rtp.db"
    sip_port, rtp = free_udp_port(), free_udp_range(1)
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=sip_port,
                                                    recordings_dir=tmp_path / "rec", rtp_ports=rtp)))
    engine = make_engine(url)
    sip = SipStore(engine)
    sip.add_account("desk-sp", "sp", "phone-pass-1", "confctl")
    sip.add_account("desk-ly", "ly", "phone-pass-2", "confctl")
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    start = datetime.now(timezone(timedelta(hours=8)))
    r = await client.post("/api/sessions", headers={"Authorization": f"Bearer {tokens['olga']}"}, json={
        "title": "Phone drill", "host_site": "jl", "sites": ["sp", "ly"], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"})
    assert r.status == 201, await r.text()
    number = (await r.json())["dial_in"]
    first = await Phone("desk-sp", "phone-pass-1", sip_port).open()
    second = await Phone("desk-ly", "phone-pass-2", sip_port).open()
    try:
        ok = await first.call(number)
        assert ok.status == 200
        media_port = int(next(l for l in ok.body.decode().splitlines() if l.startswith("m=audio")).split()[1])
        assert media_port == rtp.lo  # the only port of the range
        full = await second.call(number)
        assert full.status == 503 and f"no RTP port free in {rtp}" in full.reason
        assert full.header("Retry-After")
        metrics = await (await client.get("/metrics", headers={"Authorization": f"Bearer {tokens['opal']}"})).text()
        assert 'confctl_media_ports_refused_total{kind="rtp",node="in-process"} 1.0' in metrics
        assert (await first.hang_up()).status == 200
    finally:
        first.close()
        second.close()
        engine.dispose()
