"""--advertise and --ice-ports: every ICE socket of a node in its range, every candidate its one address;
a leg that finds the range full is refused in words and counted in /metrics."""
from __future__ import annotations

import random
import re
import socket
from datetime import datetime

import pytest

from confctl.app import make_app
from confctl.config import Settings
from media.aiortc_hooks import IceAddressing, ice_addressing, use_ice_addressing
from media.port_range import PortRange, PortRangeExhausted, UdpPorts
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import TZ, book, next_of, token_of


def free_udp_range(size: int) -> PortRange:
    """`size` consecutive UDP ports nobody holds now (checked by binding each)."""
    for _ in range(200):
        lo = random.randrange(42000, 60000 - size)
        held = []
        try:
            for port in range(lo, lo + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("0.0.0.0", port))
            return PortRange(lo, lo + size - 1)
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free UDP range")


def candidates(sdp: str) -> list[tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ", sdp)]


def test_port_ranges_parse_with_a_clear_reason():
    assert PortRange.parse("40000-40999").size == 1000 and 40999 in PortRange.parse("40000-40999")
    for bad in ("40000", "a-b", "5-4", "40000-70000", "100-200", ""):
        with pytest.raises(ValueError, match="LO-HI"):
            PortRange.parse(bad)


def test_binds_stay_in_the_range_rotate_and_say_when_it_is_full():
    rng = free_udp_range(3)
    ports = UdpPorts(rng)
    socks = [ports.bind_udp("127.0.0.1", "test") for _ in range(3)]
    try:
        assert sorted(s.getsockname()[1] for s in socks) == list(range(rng.lo, rng.hi + 1))
        with pytest.raises(PortRangeExhausted, match=f"all 3 UDP ports of {rng} are in use"):
            ports.bind_udp("127.0.0.1", "test")
        assert ports.refused == 1
        socks.pop(0).close()  # the first port comes free: the next bind finds it
        socks.append(ports.bind_udp("127.0.0.1", "test"))
        assert socks[-1].getsockname()[1] == rng.lo
    finally:
        for s in socks:
            s.close()


@pytest.fixture
async def pinned(aiohttp_client, tmp_path):
    """A control plane whose in-process node advertises 127.0.0.1 and has three ICE ports. ICE addressing is
    per process, so the test's own site peers bind in the same range: each leg takes one port per side."""
    rng = free_udp_range(3)
    url = f"sqlite:///{tmp_path}/ice.db"
    app = make_app(Settings(topology_file=demo_topology_path(), db_url=url, ice_advertise="127.0.0.1", ice_ports=rng))
    c = await aiohttp_client(app)
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    c.h = {"Authorization": f"Bearer {tokens['olga']}"}
    c.operator = {"Authorization": f"Bearer {tokens['opal']}"}
    c.range = rng
    yield c


async def test_a_leg_carries_only_the_advertised_address_in_range_and_a_full_range_refuses_in_words(pinned):
    assert ice_addressing() is not None and ice_addressing().advertise == "127.0.0.1"
    s = await book(pinned, ["jl", "cc"], datetime.now(TZ))
    peers, sockets = {}, {}
    try:
        for site in ("jl", "cc"):
            ws = sockets[site] = await pinned.ws_connect("/ws")
            await ws.send_json({"type": "join", "token": token_of(s, site)})
            assert (await next_of(ws, "joined"))["type"] == "joined"
            peers[site] = SitePeer(80)
            await ws.send_json({"type": "offer", "sdp": await peers[site].offer()})
            if site == "jl":
                answer = await next_of(ws, "answer")
                found = candidates(answer["sdp"])
                assert found and all(host == "127.0.0.1" and port in pinned.range for host, port in found), found
                await peers[site].accept(answer["sdp"])
        # cc's own offer took the third port: the node has none left for cc's leg.
        refused = await next_of(sockets["cc"], "answer")
        assert refused["type"] == "error" and refused["code"] == "no_media_ports", refused
        assert f"all 3 UDP ports of {pinned.range} are in use" in refused["detail"]
        await until(lambda: peers["jl"].pc.connectionState == "connected", timeout=15, what="jl's leg connected")
        metrics = await (await pinned.get("/metrics", headers=pinned.operator)).text()
        assert 'confctl_media_ports_refused_total{kind="ice",node="in-process"} 1.0' in metrics
    finally:
        for ws in sockets.values():
            await ws.close()
        for p in peers.values():
            await p.close()
    await pinned.close()
    assert ice_addressing() is None  # the app's teardown gave the process back aioice's own gathering


async def test_without_flags_aioice_gathers_as_it_always_did():
    assert ice_addressing() is None
    previous = use_ice_addressing(None)
    assert previous is None
    peer = SitePeer(40)
    try:
        sdp = await peer.offer()
        assert candidates(sdp)  # every interface, random ports: nothing pinned
    finally:
        await peer.close()
