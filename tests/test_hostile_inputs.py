"""Inputs a hostile or careless client sends: each gets a clear 4xx JSON error and changes nothing."""
from __future__ import annotations

import math

import pytest

from tests.conftest import booking


async def _error(r, status: int) -> dict:
    assert r.status == status, await r.text()
    assert r.content_type == "application/json", await r.text()
    body = await r.json()
    assert isinstance(body["error"], str) and body["error"]
    return body


async def _sessions(api) -> list:
    return (await (await api.get("/api/sessions", headers=api.h("ada"))).json())["sessions"]


async def test_a_non_ascii_or_oversized_token_is_refused_in_json_on_every_route(api):
    for path in ("/api/health", "/api/sessions", "/api/topology"):
        r = await api.get(path, headers={"Authorization": "Bearer cct_ü€漢字" + "x" * 30})
        assert (await _error(r, 401))["error"] == "invalid_token"
    r = await api.get("/api/sessions", headers={"Authorization": "Bearer " + "a" * 9000})
    assert (await _error(r, 431))["error"] == "header_too_large"


@pytest.mark.parametrize("path, method", [("/api/sessions", "POST"), ("/api/sessions/check", "POST"),
                                          ("/api/topology", "PUT"), ("/api/users", "POST")])
async def test_deeply_nested_json_is_a_400_not_a_crash(api, path, method):
    deep = "[" * 100_000 + "]" * 100_000
    r = await api.request(method, path, data=deep, headers=api.h("ada"))
    assert (await _error(r, 400))["error"] == "invalid_json"
    r = await api.request(method, path, data='{"x": NaN}', headers=api.h("ada"))
    assert (await _error(r, 400))["error"] == "invalid_json"


async def test_deeply_nested_json_on_the_websocket_gets_an_error_message(api):
    async with api.ws_connect("/ws") as ws:
        await ws.send_str("[" * 100_000 + "]" * 100_000)
        msg = await ws.receive_json(timeout=10)
        assert msg["type"] == "error" and msg["code"] == "invalid_json"
        await ws.send_json({"type": "nonsense"})  # the connection still works
        assert (await ws.receive_json(timeout=10))["code"] == "unknown_type"


async def test_patch_with_null_is_refused_and_the_session_kept(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "sp"]), headers=api.h("olga"))).json()
    for field in ("title", "start", "profile", "sites", "record", "plan"):
        r = await api.patch(f"/api/sessions/{s['id']}", json={field: None}, headers=api.h("olga"))
        body = await _error(r, 422)
        assert field in body["detail"] if isinstance(body["detail"], str) else field in str(body["detail"])
    kept = await (await api.get(f"/api/sessions/{s['id']}", headers=api.h("olga"))).json()
    assert kept["title"] == s["title"] and kept["profile"] == s["profile"] and kept["start"] == s["start"]


async def test_a_title_with_a_line_feed_is_refused_before_it_is_stored(api):
    r = await api.post("/api/sessions", json=booking(["jl", "sp"], title="Flood\nBEGIN:VEVENT"), headers=api.h("olga"))
    assert "title" in str((await _error(r, 422))["detail"])
    assert await _sessions(api) == []


async def test_a_long_recording_name_is_a_404(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "sp"]), headers=api.h("olga"))).json()
    for name in ("a" * 300 + ".webm", "x" * 5000):
        r = await api.get(f"/api/sessions/{s['id']}/recordings/{name}", headers=api.h("olga"))
        assert (await _error(r, 404))["error"] == "not_found"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "yesterday"])
async def test_link_load_at_absurd_dates_is_a_400(api, value):
    r = await api.get("/api/links/cc-nongan/load", params={"from": value}, headers=api.h("opal"))
    assert (await _error(r, 400))["error"] == "invalid_query"
    r = await api.get("/api/sessions", params={"to": value}, headers=api.h("opal"))
    assert (await _error(r, 400))["error"] == "invalid_query"


def _topology(**site_b) -> dict:
    return {"network": "t", "sites": [{"id": "a", "level": "province", "rooms": [{"id": "m"}]},
                                      {"id": "b", "level": "county", "parent": "a", "rooms": [{"id": "m"}], **site_b}]}


@pytest.mark.parametrize("doc, where", [
    (_topology(uplink_mbps="10"), "uplink_mbps"),
    (_topology(uplink_mbps=1e308), "uplink_mbps"),
    (_topology(uplink_mbps=True), "uplink_mbps"),
    (_topology(uplink_mbps=10, admitted_share="most"), "admitted_share"),
    (_topology(uplink_mbps=10, rooms="main"), "rooms"),
    (_topology(uplink_mbps=10, media_node_legs=2.5), "media_node_legs"),
    ({**_topology(uplink_mbps=10), "profiles": [{"name": "hd", "video_kbps": 2000, "video_overhead": math.nan}]},
     "video_overhead"),
    ({**_topology(uplink_mbps=10), "profiles": [{"name": "hd", "video_kbps": 2000, "audio_overhead": math.inf}]},
     "audio_overhead"),
    ({"sites": "everything"}, "sites"),
    # every optional key null, and sites that are not sites (found by schemathesis: a 500 before)
    ({"admitted_share": None, "cascade_levels": None, "default_rooms": None, "name": None, "name_zh": None,
      "network": None, "profiles": None, "sites": [[None, None]]}, "sites"),
    ([1, 2, 3], "topology"),
])
async def test_a_topology_with_wrong_types_or_non_finite_numbers_is_refused(api, doc, where):
    before = await (await api.get("/api/topology", headers=api.h("ada"))).json()
    # json.dumps writes NaN/Infinity, which are not JSON: those are refused as JSON (400),
    # the rest by the topology's schema (422); either way the network is unchanged.
    import json
    r = await api.put("/api/topology", data=json.dumps(doc), headers=api.h("ada"))
    assert r.status in (400, 422), await r.text()
    body = await r.json()
    assert where in str(body["detail"]) or body["error"] == "invalid_json"
    after = await (await api.get("/api/topology", headers=api.h("ada"))).json()
    assert after == before


def test_a_nan_overhead_in_a_topology_file_is_refused_too():
    from rooms.topology import TopologyError, parse_topology
    with pytest.raises(TopologyError) as err:
        parse_topology({**_topology(uplink_mbps=10), "profiles": [{"name": "hd", "video_kbps": 2000,
                                                                  "video_overhead": math.nan}]})
    assert any("video_overhead" in p for p in err.value.problems)


@pytest.mark.parametrize("username", ["desk-101\n", "desk 101", "désk", "", "a" * 65])
async def test_a_sip_username_that_is_not_one_plain_token_is_refused(api, username):
    r = await api.post("/api/sip-accounts", json={"username": username, "site": "cc", "password": "long secret 1"},
                       headers=api.h("ada"))
    await _error(r, 422)
    listed = await (await api.get("/api/sip-accounts", headers=api.h("ada"))).json()
    assert listed["accounts"] == []


async def test_a_wrong_method_is_a_405_with_allow_and_the_openapi_lists_the_errors(api):
    r = await api.request("PUT", "/api/sessions", headers=api.h("ada"))
    assert r.status == 405 and "POST" in r.headers["Allow"] and (await r.json())["error"]
    doc = await (await api.get("/api/openapi.json")).json()
    book = doc["paths"]["/api/sessions"]["post"]["responses"]
    assert {"201", "400", "401", "403", "409", "422", "503"} <= set(book)
    one = doc["paths"]["/api/sessions/{id}"]["get"]["responses"]
    assert "404" in one
    assert "405" in doc["paths"]["/api/sessions"]["post"]["responses"]
    put = doc["paths"]["/api/topology"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert put["$ref"].endswith("TopologyDocument")
