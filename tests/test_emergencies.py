"""Emergencies: presets resolve to the right sites; only the duty officer (emergency permission) opens
one; it starts now at emergency precedence; bad presets and sites are 422."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from rooms.admission import RequestError
from rooms.presets import preset_sites
from rooms.store.engine import make_engine
from rooms.store.users import Role, UserError, UserStore
from rooms.topology import demo_topology
from tests.conftest import booking


def test_presets_name_the_sites_a_duty_officer_calls_together():
    topo = demo_topology()
    host, offices = preset_sites(topo, "emergency-offices")
    prefectures = [s.id for s in topo.sites.values() if s.level == "prefecture"]
    assert host == "jl/emergency" and offices == [f"{p}/emergency" for p in prefectures]
    _, mobile = preset_sites(topo, "mobile-platforms")
    assert "jl-vehicle" in mobile and all(topo.sites[s].level == "mobile" for s in mobile)
    assert preset_sites(topo, "vehicle") == ("jl/emergency", ["jl-vehicle"])
    _, cc = preset_sites(topo, "prefecture:cc")
    assert cc[0] == "cc/emergency" and "cc-nongan/emergency" in cc and "cc-mobile" not in cc
    for bad in ("prefecture:cc-nongan", "prefecture:atlantis", "everyone"):
        with pytest.raises(RequestError):
            preset_sites(topo, bad)


def test_only_known_permissions_are_granted(tmp_path):
    from rooms.store.migrate import upgrade
    engine = make_engine(f"sqlite:///{tmp_path}/u.db")
    upgrade(engine)
    with pytest.raises(UserError, match="unknown permission"):
        UserStore(engine).add("x", Role.ORGANIZER, None, set(), ("launch_missiles",))


async def test_only_the_duty_officer_opens_an_emergency_and_it_starts_now_at_emergency_precedence(api, db_url):
    engine = make_engine(db_url)
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    officer = {"Authorization": f"Bearer {duty}"}
    refused = await api.post("/api/emergencies", json={"preset": "emergency-offices"}, headers=api.h("olga"))
    assert refused.status == 403 and "emergency permission" in (await refused.json())["detail"]
    routine_only = await api.post("/api/sessions", json=booking(["jl", "cc"], precedence="emergency"), headers=api.h("olga"))
    assert routine_only.status == 403
    r = await api.post("/api/emergencies", json={"preset": "emergency-offices", "title": "Flood"}, headers=officer)
    assert r.status == 201, await r.text()
    s = await r.json()
    assert s["precedence"] == "emergency" and s["host_site"] == "jl" and len(s["sites"]) == 11
    started = datetime.fromisoformat(s["start"])
    assert abs((started - datetime.now(timezone.utc)).total_seconds()) < 60  # now, not a slot later
    assert set(s["join_urls"]) == {x["site"] for x in s["sites"]}
    for body, code in (({"preset": "everyone"}, "unknown_preset"), ({"sites": ["atlantis"]}, "unknown_site"), ({}, None)):
        bad = await api.post("/api/emergencies", json=body, headers=officer)
        assert bad.status == 422 and (code is None or (await bad.json())["error"] == code), await bad.text()
    me = await (await api.get("/api/me", headers=officer)).json()
    assert me["permissions"] == ["emergency"]


async def test_an_emergency_with_every_mobile_platform_and_the_vehicle_is_admitted_speaker_only(api, db_url):
    engine = make_engine(db_url)
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    r = await api.post("/api/emergencies", json={"preset": "mobile-platforms"}, headers={"Authorization": f"Bearer {duty}"})
    assert r.status == 201, await r.text()
    s = await r.json()
    mobile = {x["site"] for x in s["sites"]} - {"jl"}
    assert "jl-vehicle" in mobile and len(mobile) == 11
    assert s["media_plan"]["layouts"] == {m: "speaker" for m in mobile}  # the plan says which it picked
    links = {(l["link"]): l for l in s["media_plan"]["links"]}
    assert all(links[m]["down_kbps"] <= links[m]["limit_kbps"] for m in mobile)  # 920 of 1500 each
    # a routine booking with the same thin sites is refused as before: layouts are asked for, not imposed
    plain = await api.post("/api/sessions/check", json=booking(["jl", "cc", "jl-vehicle"], profile="sd"), headers=api.h("olga"))
    assert (await plain.json())["decision"] == "refused"
    asked = await api.post("/api/sessions/check", json=booking(["jl", "cc", "jl-vehicle"], profile="sd", auto_layouts=True),
                           headers=api.h("olga"))
    assert (await asked.json())["media_plan"]["layouts"] == {"jl-vehicle": "speaker"}
    stray = await api.post("/api/sessions/check", json=booking(["jl", "cc"], layouts={"cc-nongan": "audio"}),
                           headers=api.h("olga"))
    assert stray.status == 422 and (await stray.json())["error"] == "unknown_site"


async def test_ending_an_emergency_is_the_duty_officers_and_its_record_exports(api, db_url):
    engine = make_engine(db_url)
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    officer = {"Authorization": f"Bearer {duty}"}
    routine = await (await api.post("/api/sessions", json=booking(["jl", "cc"]), headers=api.h("olga"))).json()
    r = await api.post("/api/emergencies", json={"preset": "vehicle", "title": "Convoy"}, headers=officer)
    assert r.status == 201, await r.text()
    e = await r.json()
    assert e["preempted"] == [] and e["limited"] == []  # the vehicle's link was free: nobody gave way
    running = await (await api.get("/api/emergencies", headers=officer)).json()
    assert [x["id"] for x in running["emergencies"]] == [e["id"]]
    assert (await api.post(f"/api/emergencies/{e['id']}/end", headers=api.h("olga"))).status == 403
    assert (await api.post("/api/emergencies/ses_nope/end", headers=officer)).status == 404
    not_one = await api.post(f"/api/emergencies/{routine['id']}/end", headers=officer)
    assert not_one.status == 409 and (await not_one.json())["error"] == "not_running"
    ended = await api.post(f"/api/emergencies/{e['id']}/end", headers=officer)
    assert ended.status == 200 and (await ended.json())["restored"] == []
    again = await api.post(f"/api/emergencies/{e['id']}/end", headers=officer)
    assert again.status == 409 and "already over" in (await again.json())["detail"]
    assert (await (await api.get("/api/emergencies", headers=officer)).json())["emergencies"] == []
    csv_text = await (await api.get("/api/preemptions?format=csv", headers=api.h("opal"))).text()
    assert csv_text.splitlines()[0] == "at,emergency_id,session_id,link,direction,kind,step,from_kbps,to_kbps,sites"
    assert (await api.get("/api/preemptions?format=xml", headers=api.h("opal"))).status == 422
    assert (await api.get("/api/preemptions", headers=api.h("tina"))).status == 403


async def test_a_site_dropped_for_an_emergency_may_not_join_until_it_is_over(api, db_url):
    """Nong'an's own HD1080 picture fills half its uplink: an HD1080 emergency there leaves no room for
    a routine session's picture, which no layout makes smaller, so that leg is dropped (after its
    downlink was degraded); its join link is refused with the reason until the emergency ends."""
    from datetime import timedelta
    from urllib.parse import parse_qs, urlparse
    engine = make_engine(db_url)
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    officer = {"Authorization": f"Bearer {duty}"}
    now = datetime.now(timezone(timedelta(hours=8)))
    r = await api.post("/api/sessions", headers=api.h("olga"), json={
        "title": "Engineering review", "host_site": "cc", "sites": ["cc-nongan"], "start": now.isoformat(),
        "end": (now + timedelta(hours=3)).isoformat(), "profile": "hd1080"})
    assert r.status == 201, await r.text()
    routine = await r.json()
    token = parse_qs(urlparse(routine["join_urls"]["cc-nongan"]).query)["token"][0]
    r = await api.post("/api/emergencies", headers=officer, json={
        "title": "Dam alert", "sites": ["cc/emergency", "cc-nongan/emergency"], "profile": "hd1080"})
    assert r.status == 201, await r.text()
    e = await r.json()
    taken = {(x["direction"], x["kind"], x["step"]) for x in e["preempted"] if x["link"] == "cc-nongan"}
    assert ("up", "drop", "dropped") in taken  # 4280 + 4280 up > 7500: only dropping frees an uplink
    after = await (await api.get(f"/api/sessions/{routine['id']}", headers=api.h("olga"))).json()
    assert after["media_plan"]["dropped"] == ["cc-nongan"]
    info = await (await api.get(f"/api/join-info?token={token}")).json()
    assert info["dropped"] is True
    ws = await api.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token})
    refused = await ws.receive_json(timeout=10)
    assert refused["type"] == "error" and refused["code"] == "preempted" and "emergency" in refused["detail"]
    await ws.close()

    # Cancelled rather than ended: what it took comes back just the same
    ended = await (await api.delete(f"/api/sessions/{e['id']}", headers=officer)).json()
    assert ended["status"] == "cancelled" and {x["session_id"] for x in ended["restored"]} == {routine["id"]}
    back = await (await api.get(f"/api/sessions/{routine['id']}", headers=api.h("olga"))).json()
    assert "dropped" not in back["media_plan"]
    assert (await (await api.get(f"/api/join-info?token={token}")).json())["dropped"] is False
    ws = await api.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": token})
    assert (await ws.receive_json(timeout=10))["type"] == "joined"
    await ws.close()


async def test_the_dry_check_names_the_session_that_gives_way_then_two_emergencies_run_at_once(api, db_url):
    """A routine booking of jl/emergency, audio-only for the next three hours, stops no preset: the
    confirmation names it (title, organizer, what it gives), nothing is taken until the opening; then it
    moves to the main room and says so; a second emergency runs beside the first."""
    from datetime import timedelta
    engine = make_engine(db_url)
    _, duty = UserStore(engine).add("duty", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    officer = {"Authorization": f"Bearer {duty}"}
    now = datetime.now(timezone(timedelta(hours=8)))
    r = await api.post("/api/sessions", headers=api.h("olga"), json={
        "title": "Audio call in the hall", "host_site": "jl/emergency", "sites": ["cc"], "start": now.isoformat(),
        "end": (now + timedelta(hours=3)).isoformat(), "profile": "audio"})
    assert r.status == 201, await r.text()
    routine = await r.json()
    assert routine["sites"][0] == {"site": "jl", "room": "emergency"}

    refused = await api.post("/api/emergencies/preview", json={"preset": "vehicle"}, headers=api.h("olga"))
    assert refused.status == 403
    bad = await api.post("/api/emergencies/preview", json={"preset": "everyone"}, headers=officer)
    assert bad.status == 422 and (await bad.json())["error"] == "unknown_preset"
    p = await api.post("/api/emergencies/preview", json={"preset": "vehicle", "title": "Convoy"}, headers=officer)
    assert p.status == 200, await p.text()
    seen = await p.json()
    assert seen["fits"] is True
    (way,) = seen["gives_way"]
    assert (way["session"], way["title"], way["organizer"]) == (routine["id"], "Audio call in the hall", "olga")
    assert way["what"] == ["Jilin Provincial Government moves from " + _room("jl", "emergency") + " to " + _room("jl", "main")]
    same = await (await api.get(f"/api/sessions/{routine['id']}", headers=api.h("olga"))).json()
    assert same["sites"][0]["room"] == "emergency" and same["sequence"] == 0  # the dry check took nothing

    r = await api.post("/api/emergencies", json={"preset": "vehicle", "title": "Convoy"}, headers=officer)
    assert r.status == 201, await r.text()
    first = await r.json()
    assert [(x["session_id"], x["kind"], x["step"]) for x in first["preempted"]] == [(routine["id"], "move", "main")]
    moved = await (await api.get(f"/api/sessions/{routine['id']}", headers=api.h("olga"))).json()
    assert moved["sites"][0]["room"] == "main" and moved["sequence"] == 1
    history = await (await api.get(f"/api/sessions/{routine['id']}/history", headers=api.h("olga"))).json()
    assert way["what"][0] in [e.get("message") for e in history["history"]]

    r = await api.post("/api/emergencies", json={"preset": "emergency-offices", "title": "Floods"}, headers=officer)
    assert r.status == 201, await r.text()
    second = await r.json()
    assert second["sites"][0] == {"site": "jl", "room": "main"}  # two emergencies, two rooms
    running = await (await api.get("/api/emergencies", headers=officer)).json()
    assert {e["id"] for e in running["emergencies"]} == {first["id"], second["id"]}


def _room(site: str, room: str) -> str:
    return next(r.name for r in demo_topology().sites[site].rooms if r.id == room)
