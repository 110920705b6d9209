"""The REST API end to end over HTTP (aiohttp test server, real SQLite / PostgreSQL)."""
from __future__ import annotations

import pytest
from icalendar import Calendar

from confctl.app import all_routes
from tests.conftest import booking, tomorrow_at




async def test_book_then_refuse_with_reasons_and_alternatives(api):
    r = await api.post("/api/sessions", json=booking(["jl", "cc-nongan", "jlc"]), headers=api.h("olga"))
    assert r.status == 201, await r.text()
    s = await r.json()
    assert s["id"].startswith("ses_") and s["start"].endswith("+08:00")
    county = next(l for l in s["media_plan"]["links"] if l["link"] == "cc-nongan")
    assert county["down_kbps"] == 4280 and county["up_kbps"] == 2180 and county["limit_kbps"] == 7500

    # (their main rooms are taken: the emergency offices, asked for, are free; the link is what binds)
    r = await api.post("/api/sessions", json=booking(["cc", "cc-nongan/emergency", "sp"]), headers=api.h("oscar"))
    assert r.status == 409
    body = await r.json()
    assert body["error"] == "admission_refused"
    (v,) = body["violations"]
    assert (v["link"], v["direction"], v["from"], v["to"]) == ("cc-nongan", "down", "cc", "cc-nongan")
    assert v["demand_kbps"] == 4280 and v["available_kbps"] == 7500 - 4280
    assert v["start"] == s["start"] and v["end"] == s["end"]
    assert {"profile": "sd", "plan": "cascade"} in body["alternatives"]
    later = [a for a in body["alternatives"] if "start" in a]
    assert later and later[0]["start"] == s["end"]  # right when the first session frees the link
    # the refused booking stored nothing
    listed = await (await api.get("/api/sessions", headers=api.h("opal"))).json()
    assert [x["id"] for x in listed["sessions"]] == [s["id"]]


async def test_dry_run_reports_without_holding(api):
    r = await api.post("/api/sessions/check", json=booking(["jl", "cc-nongan", "jlc"], profile="hd1080"),
                       headers=api.h("olga"))
    assert r.status == 200
    d = await r.json()
    assert d["decision"] == "refused" and d["violations"][0]["demand_kbps"] == 8480
    assert d["alternatives"][0] == {"profile": "hd720", "plan": "cascade"}
    ok = await (await api.post("/api/sessions/check", json=booking(["jl", "cc-nongan", "jlc"]), headers=api.h("olga"))).json()
    assert ok["decision"] == "accepted" and ok["rooms"]["cc-nongan"] == "main"
    assert (await (await api.get("/api/sessions", headers=api.h("opal"))).json())["sessions"] == []


async def test_roles_and_ownership(api):
    assert (await api.post("/api/sessions", json=booking(["jl", "sp"]))).status == 401
    r = await api.post("/api/sessions", json=booking(["jl", "sp"]), headers={"Authorization": "Bearer nope"})
    assert r.status == 401 and (await r.json())["error"] == "invalid_token"
    r = await api.post("/api/sessions", json=booking(["jl", "sp"]), headers=api.h("tina"))
    assert r.status == 403 and (await r.json())["error"] == "forbidden"
    s = await (await api.post("/api/sessions", json=booking(["jl", "sp"]), headers=api.h("olga"))).json()
    assert (await api.patch(f"/api/sessions/{s['id']}", json={"title": "x"}, headers=api.h("oscar"))).status == 403
    assert (await api.delete(f"/api/sessions/{s['id']}", headers=api.h("oscar"))).status == 403
    assert (await api.get(f"/api/sessions/{s['id']}", headers=api.h("tina"))).status == 403  # not her site
    assert (await api.get(f"/api/sessions/{s['id']}", headers=api.h("opal"))).status == 200
    r = await api.patch(f"/api/sessions/{s['id']}", json={"title": "Renamed", "profile": "sd"}, headers=api.h("olga"))
    assert r.status == 200 and (await r.json())["title"] == "Renamed"
    r = await api.delete(f"/api/sessions/{s['id']}", headers=api.h("ada"))
    assert r.status == 200 and (await r.json())["status"] == "cancelled"
    assert (await api.delete(f"/api/sessions/{s['id']}", headers=api.h("ada"))).status == 409


async def test_patch_is_readmitted_and_refusal_keeps_the_session(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "cc-nongan", "jlc"], profile="sd"),
                              headers=api.h("olga"))).json()
    r = await api.patch(f"/api/sessions/{s['id']}", json={"profile": "hd1080"}, headers=api.h("olga"))
    assert r.status == 409 and (await r.json())["violations"][0]["link"] == "cc-nongan"
    assert (await (await api.get(f"/api/sessions/{s['id']}", headers=api.h("olga"))).json())["profile"] == "sd"
    r = await api.patch(f"/api/sessions/{s['id']}", json={"sites": ["jlc", "sp"]}, headers=api.h("olga"))
    assert r.status == 200 and {x["site"] for x in (await r.json())["sites"]} == {"jl", "jlc", "sp"}


async def test_calendar_invite_and_site_feed(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "cc-nongan"], recurrence="FREQ=DAILY;COUNT=3"),
                              headers=api.h("olga"))).json()
    r = await api.get(f"/api/sessions/{s['id']}.ics", headers=api.h("olga"))
    assert r.status == 200 and r.content_type == "text/calendar"
    cal = Calendar.from_ical(await r.read())
    (ev,) = cal.walk("VEVENT")
    assert str(ev["summary"]) == "Flood briefing" and ev.decoded("dtstart").isoformat().startswith(s["start"][:10]) is not None
    rdates = ev.get("rdate")
    assert len(rdates if isinstance(rdates, list) else [rdates]) == 2
    # a calendar client passes the token in the query
    feed = await api.get(f"/api/sites/cc-nongan/calendar.ics?token={api.tokens['tina']}")
    assert feed.status == 200
    events = Calendar.from_ical(await feed.read()).walk("VEVENT")
    assert [str(e["uid"]) for e in events] == [f"{s['id']}@confctl"]
    assert "Nong'an" in str(events[0]["location"])
    assert (await api.get("/api/sites/sp/calendar.ics", headers=api.h("tina"))).status == 403


async def test_link_load_and_topology_and_capacity(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "cc-nongan", "jlc"]), headers=api.h("olga"))).json()
    r = await api.get("/api/links/cc-nongan/load", params={"from": s["start"], "to": s["end"]}, headers=api.h("opal"))
    load = await r.json()
    assert load["down"]["peak_kbps"] == 4280 and load["limit_kbps"] == 7500 and load["down"]["sessions"] == [s["id"]]
    assert load["down"]["steps"][0]["t"] == s["start"]
    assert (await api.get("/api/links/nowhere/load", headers=api.h("opal"))).status == 404
    topo = await (await api.get("/api/topology", headers=api.h("opal"))).json()
    assert len(topo["sites"]) == 78
    cap = await (await api.get("/api/capacity?plan=cascade", headers=api.h("opal"))).json()
    county = {r["profile"]: r["sessions"] for r in cap["rows"] if r["level"] == "county" and r["layout"] == "full"}
    assert county == {"hd1080": 0, "hd720": 1, "sd": 4, "audio": 93}
    mobile = [(r["profile"], r["layout"], r["sessions"]) for r in cap["rows"] if r["level"] == "mobile" and r["layout"] != "full"]
    assert mobile == [("sd", "speaker", 1)]  # a 2 Mbit/s link: SD with the speaker only


async def test_openapi_covers_every_route(api):
    doc = await (await api.get("/api/openapi.json")).json()
    for r in all_routes():
        assert r.method.lower() in doc["paths"][r.path], r.path
    assert "BookingBody" in doc["components"]["schemas"]


async def test_admin_manages_users(api):
    r = await api.post("/api/users", json={"name": "tom", "role": "technician", "site": "sp"}, headers=api.h("ada"))
    assert r.status == 201
    token = (await r.json())["token"]
    me = await (await api.get("/api/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["role"] == "technician" and me["site"] == "sp"
    assert (await api.post("/api/users", json={"name": "x", "role": "admin"}, headers=api.h("olga"))).status == 403
    bad = await api.post("/api/users", json={"name": "y", "role": "technician"}, headers=api.h("ada"))
    assert bad.status == 422
    dup = await api.post("/api/users", json={"name": "tom", "role": "operator"}, headers=api.h("ada"))
    assert dup.status == 422


BAD = [
    ("malformed JSON", b'{"title": "x",', 400, "invalid_json"),
    ("not an object", b"[1, 2]", 422, "invalid_body"),
    ("unknown site", booking(["jl", "atlantis"]), 422, "unknown_site"),
    ("unknown room", booking(["jl", "cc-nongan/ballroom"]), 422, "unknown_room"),
    ("end before start", dict(booking(["jl", "sp"]), end=tomorrow_at(9).isoformat()), 422, "invalid_window"),
    ("over 24 h without recurrence", booking(["jl", "sp"], hours=25), 422, "window_too_long"),
    ("year 9999", dict(booking(["jl", "sp"]), start="9999-01-01T09:00:00+08:00", end="9999-01-01T10:00:00+08:00"),
     422, "too_far_ahead"),
    ("unknown profile", booking(["jl", "sp"], profile="hd4k"), 422, "unknown_profile"),
    ("no offset", dict(booking(["jl", "sp"]), start="2030-01-01T09:00:00"), 422, "invalid_time"),
    ("garbage time", dict(booking(["jl", "sp"]), start="tomorrow"), 422, "invalid_time"),
    ("unknown field", dict(booking(["jl", "sp"]), colour="red"), 422, "invalid_body"),
    ("bad plan", dict(booking(["jl", "sp"]), plan="mesh"), 422, "invalid_body"),
    ("bad rrule", booking(["jl", "sp"], recurrence="FREQ=SOMETIMES"), 422, "invalid_recurrence"),
    ("endless rrule", booking(["jl", "sp"], recurrence="FREQ=DAILY"), 422, "unbounded_recurrence"),
    ("title as number", dict(booking(["jl", "sp"]), title=5), 422, "invalid_body"),
]


@pytest.mark.parametrize("case, body, status, code", BAD, ids=[b[0] for b in BAD])
async def test_bad_bookings_get_clear_errors_and_store_nothing(api, case, body, status, code):
    kw = {"data": body, "headers": {**api.h("olga"), "Content-Type": "application/json"}} if isinstance(body, bytes) \
        else {"json": body, "headers": api.h("olga")}
    r = await api.post("/api/sessions", **kw)
    assert r.status == status, await r.text()
    payload = await r.json()
    assert payload["error"] == code and payload["detail"]
    assert (await (await api.get("/api/sessions", headers=api.h("opal"))).json())["sessions"] == []


async def test_bad_queries_and_unknown_ids(api):
    assert (await api.get("/api/sessions?from=yesterday", headers=api.h("opal"))).status == 400
    r = await api.get("/api/sessions/ses_nope", headers=api.h("opal"))
    assert r.status == 404 and (await r.json())["error"] == "not_found"
    r = await api.get("/api/no/such/route", headers=api.h("opal"))
    assert r.status == 404 and (await r.json())["error"] == "not_found"


async def test_no_free_dial_in_number_is_a_clear_503_and_nothing_is_stored(api, monkeypatch):
    import secrets as secrets_module
    r = await api.post("/api/sessions", json=booking(["jl", "sp"], profile="audio"), headers=api.h("olga"))
    assert r.status == 201
    first = await r.json()
    # every draw lands on the number the first session holds: the whole numbering plan taken, in effect
    monkeypatch.setattr(secrets_module, "randbelow", lambda _n: int(first["dial_in"]) - 100000)
    r = await api.post("/api/sessions", json=booking(["jl", "ly"], hour=13, profile="audio"), headers=api.h("olga"))
    assert r.status == 503, await r.text()
    payload = await r.json()
    assert payload["error"] == "no_dial_in_number" and "dial-in" in payload["detail"]
    sessions = (await (await api.get("/api/sessions", headers=api.h("opal"))).json())["sessions"]
    assert [s["id"] for s in sessions] == [first["id"]]


async def test_an_admin_books_past_admission_and_the_override_is_recorded(api):
    first = await api.post("/api/sessions", json=booking(["cc", "cc-nongan", "cc-yushu"]), headers=api.h("olga"))
    assert first.status == 201 and (await first.json())["admission_override"] is None
    second = booking(["cc/emergency", "cc-nongan/emergency", "cc-yushu/emergency"], title="Past the model")
    refused = await api.post("/api/sessions", json=second, headers=api.h("olga"))
    assert refused.status == 409  # Nong'an's 10 Mbit/s link takes one HD720 program, not two
    organizer = await api.post("/api/sessions", json={**second, "override": True}, headers=api.h("olga"))
    assert organizer.status == 403 and "admin" in (await organizer.json())["detail"]
    forced = await api.post("/api/sessions", json={**second, "override": True}, headers=api.h("ada"))
    assert forced.status == 201
    body = await forced.json()
    assert body["admission_override"]["by"] and {v["link"] for v in body["admission_override"]["violations"]} >= {
        "cc-nongan"}
    listed = await api.get(f"/api/sessions/{body['id']}", headers=api.h("opal"))
    assert (await listed.json())["admission_override"] == body["admission_override"]  # stored, visible to operators
    too_big = booking(["jl", *[f"cc-{c}" for c in ("nongan", "yushu", "dehui", "jiutai")]], profile="hd1080",
                      title="Never fits", override=True)
    alone = await api.post("/api/sessions", json=too_big, headers=api.h("ada"))
    assert alone.status == 409  # too big for a county link even on an empty network: nothing to override
