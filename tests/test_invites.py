"""Invites through the icalendar parser: organizer, sites as mailto: rooms, join link, dial-in, updates and the cancel.
(Mailed invites: tests/test_invite_mail.py.)"""
from __future__ import annotations

from icalendar import Calendar

from tests.conftest import booking, tomorrow_at


async def _invite(api, sid: str, who: str, site: str | None = None):  # type: ignore[no-untyped-def]
    r = await api.get(f"/api/sessions/{sid}.ics" + (f"?site={site}" if site else ""), headers=api.h(who))
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/calendar")
    cal = Calendar.from_ical(await r.read())
    (event,) = cal.walk("VEVENT")
    return cal, event


async def test_an_invite_carries_the_organizer_the_sites_the_join_link_and_dial_in_and_follows_changes(api):
    r = await api.post("/api/sessions", json=booking(["jl", "cc", "cc-nongan"], profile="sd"), headers=api.h("olga"))
    s = await r.json()
    cal, ev = await _invite(api, s["id"], "olga", "cc-nongan")
    assert str(cal["method"]) == "REQUEST" and int(ev["sequence"]) == 0
    assert ev["organizer"].params["cn"] == "olga"
    # olga has no address yet: her confctl id, where a mailto: would go; the sites' topology contacts are mailto:
    assert str(ev["organizer"]) == f"urn:confctl:user:{s['organizer_id']}"
    assert {str(a): a.params["x-confctl-site"] for a in ev["attendee"]} == {
        "mailto:jl@jl.example": "jl", "mailto:cc@jl.example": "cc", "mailto:cc-nongan@jl.example": "cc-nongan"}
    attendees = {str(a.params["cn"]).split(" / ")[0]: a.params for a in ev["attendee"]}
    assert set(attendees) == {"Jilin Provincial Government", "Changchun", "Nong'an County"}
    assert all(p["cutype"] == "ROOM" for p in attendees.values())
    assert attendees["Jilin Provincial Government"]["role"] == "CHAIR"
    assert str(ev["url"]) == s["join_urls"]["cc-nongan"]
    assert s["dial_in"] in str(ev["location"]) and f"Dial-in from a registered phone: {s['dial_in']}" in str(ev["description"])
    assert ev.decoded("dtstart") == tomorrow_at(10)

    # the whole session's invite carries no link: each is its site's credential, and whole invites get forwarded
    _, whole = await _invite(api, s["id"], "olga")
    assert "url" not in whole and not any(u in str(whole["description"]) for u in s["join_urls"].values())
    me = await (await api.get("/api/me", headers=api.h("olga"))).json()
    assert (await api.patch(f"/api/users/{me['id']}", json={"email": "olga@jl.example"}, headers=api.h("ada"))).status == 200
    _, ev = await _invite(api, s["id"], "olga")
    assert str(ev["organizer"]) == "mailto:olga@jl.example" and ev["organizer"].params["x-confctl-user"] == me["id"]

    # the technician's own invite: their site's link, nobody else's
    _, tech = await _invite(api, s["id"], "tina")
    assert str(tech["url"]) == s["join_urls"]["cc-nongan"] and s["join_urls"]["jl"] not in str(tech["description"])

    moved = await api.patch(f"/api/sessions/{s['id']}", json={"start": tomorrow_at(15).isoformat(),
                                                              "end": tomorrow_at(16).isoformat()}, headers=api.h("olga"))
    assert moved.status == 200
    _, ev = await _invite(api, s["id"], "olga")
    assert int(ev["sequence"]) == 1 and ev.decoded("dtstart") == tomorrow_at(15)
    assert (await api.delete(f"/api/sessions/{s['id']}", headers=api.h("olga"))).status == 200
    cal, ev = await _invite(api, s["id"], "olga")
    assert str(cal["method"]) == "CANCEL" and int(ev["sequence"]) == 2 and str(ev["status"]) == "CANCELLED"
    assert "url" not in ev and "Join as" not in str(ev["description"])  # no live links in a cancel
    bad = await api.get(f"/api/sessions/{s['id']}.ics?site=cc-yushu", headers=api.h("olga"))
    assert bad.status == 422


async def test_a_sites_feed_gives_each_session_its_join_link_for_that_site(api):
    r = await api.post("/api/sessions", json=booking(["jl", "cc-nongan"], profile="sd"), headers=api.h("olga"))
    s = await r.json()
    feed = await api.get("/api/sites/cc-nongan/calendar.ics", headers=api.h("tina"))
    cal = Calendar.from_ical(await feed.read())
    assert "method" not in cal  # a subscribed feed, not an invite
    (ev,) = cal.walk("VEVENT")
    assert str(ev["url"]) == s["join_urls"]["cc-nongan"]
