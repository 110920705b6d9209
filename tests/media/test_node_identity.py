"""Each node its own identity: a node credential registers its own id only, each node gets its own key, so a
grant minted with one node's key is refused at another, and the control plane's calls carry no secret."""
from __future__ import annotations

import time
from datetime import datetime

import aiohttp
import pytest

from confctl.app import make_app
from confctl.config import Settings
from media.grants import Grant, InvalidGrant, node_key, sign_control, sign_grant, verify_control, verify_grant
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.node_processes import start_node, wait_registered
from tests.media.test_signalling import TZ, book, next_of


def test_a_grant_signed_with_one_nodes_key_is_refused_by_another():
    master = b"m" * 32
    cc, jl = node_key(master, "node-cc"), node_key(master, "node-jl")
    grant = sign_grant(cc, Grant("ses_1", "cc", "jl", False, False, time.time() + 60, node="node-jl"))
    with pytest.raises(InvalidGrant, match="not signed"):
        verify_grant(jl, grant, time.time(), "node-jl")


def test_a_control_call_is_bound_to_its_node_method_and_path_and_expires():
    key = node_key(b"m" * 32, "node-cc")
    call = sign_control(key, "node-cc", "GET", "/figures", 1000.0)
    assert verify_control(key, call, "node-cc", "GET", "/figures", 1010.0)
    assert not verify_control(key, call, "node-cc", "POST", "/legs/end", 1010.0)  # replayed on another path
    assert not verify_control(key, call, "node-jl", "GET", "/figures", 1010.0)
    assert not verify_control(key, call, "node-cc", "GET", "/figures", 1031.0)  # 30 s
    assert not verify_control(key, key.hex(), "node-cc", "GET", "/figures", 1010.0)  # the old scheme: the key itself
    end = sign_control(key, "node-cc", "POST", "/legs/end", 1000.0, b'{"session": "s1", "site": "cc"}')
    assert verify_control(key, end, "node-cc", "POST", "/legs/end", 1010.0, b'{"session": "s1", "site": "cc"}')
    assert not verify_control(key, end, "node-cc", "POST", "/legs/end", 1010.0, b'{"session": "s2", "site": "jl"}')


@pytest.fixture
async def two_nodes(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/id.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    recordings_dir=tmp_path / "rec")))
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None),
                             ("node-jl", Role.NODE, None), ("node-cc", Role.NODE, None)])
    base = f"http://127.0.0.1:{server.port}"
    procs, ports = {}, {}
    for nid in ("node-jl",):
        procs[nid], ports[nid] = start_node(base, tokens[nid], nid, tmp_path / "rec")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_registered(http, base, tokens["opal"], procs)
            yield base, tokens, ports, http
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(timeout=10)


async def test_a_stolen_node_credential_registers_only_its_node_and_cannot_mint_grants_for_another(two_nodes):
    base, tokens, ports, http = two_nodes
    thief = {"Authorization": f"Bearer {tokens['node-cc']}"}
    # node-cc's credential may not take the root's id, at any URL.
    r = await http.post(f"{base}/api/media-nodes", json={"id": "node-jl", "url": "http://127.0.0.1:1"}, headers=thief)
    assert r.status == 403 and (await r.json())["error"] == "wrong_node"
    # As itself it gets its own key, not the one node-jl verifies with.
    r = await http.post(f"{base}/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:1"}, headers=thief)
    cc_key = bytes.fromhex((await r.json())["grant_key"])
    now = datetime.now(TZ)
    r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {tokens['olga']}"}, json={
        "title": "Forged", "host_site": "jl", "sites": ["sp"], "start": now.isoformat(),
        "end": now.replace(hour=23, minute=59).isoformat(), "profile": "sd", "plan": "central"})
    assert r.status == 201, await r.text()
    session = await r.json()
    forged = sign_grant(cc_key, Grant(session["id"], "sp", "jl", False, False, time.time() + 60, node="node-jl"))
    ws = await http.ws_connect(f"http://127.0.0.1:{ports['node-jl']}/ws")
    try:
        await ws.send_json({"type": "join", "grant": forged})
        refused = await next_of(ws, "joined")
        assert refused["type"] == "error" and refused["code"] == "invalid_grant", refused
    finally:
        await ws.close()
    # Nor can it read node-jl's figures or end its legs: its key signs calls for node-cc only.
    for method, path in (("GET", "/figures"), ("POST", "/legs/end")):
        call = sign_control(cc_key, "node-jl", method, path, time.time())
        async with http.request(method, f"http://127.0.0.1:{ports['node-jl']}{path}", json={},
                                headers={"Authorization": f"Bearer {call}"}) as r:
            assert r.status == 403, (path, await r.text())
