"""Emergencies in the database (SQLite and PostgreSQL): opening one pre-empts lower-precedence sessions
on the congested links only, rewrites their plans so admission follows, records every step, limits
the emergency's own sites when even that is not enough, and gives back what fits when it ends."""
from __future__ import annotations

import json

import pytest

from rooms.admission import Accepted, BookingRequest, Occurrence, SiteChoice
from rooms.booking_form import SessionMeta
from rooms.ids import PlanKind, RoomId, SiteId
from rooms.preemption import Precedence
from rooms.store.preemptions import Preemptions
from rooms.topology import parse_topology

T0 = 1_900_000_000  # a fixed hour: nothing else is booked then
ROOMS = [{"id": f"r{i}"} for i in range(20)]  # rooms never bind here: only links do
NETWORK = parse_topology({"network": "county", "sites": [
    {"id": "p", "level": "province", "rooms": ROOMS, "name": "Province"},
    {"id": "f", "level": "prefecture", "parent": "p", "uplink_mbps": 155, "rooms": ROOMS, "name": "Prefecture"},
    *({"id": c, "level": "county", "parent": "f", "uplink_mbps": 10, "rooms": ROOMS, "name": f"County {c}"}
      for c in ("c1", "c2", "c3"))]})


@pytest.fixture
def desk(store) -> Preemptions:
    assert store.set_topology(NETWORK).applied
    return Preemptions(store)


def request(sites: list[str], profile: str, start: int = T0, hours: float = 1) -> BookingRequest:
    return BookingRequest(SiteId(sites[0]), tuple(SiteChoice(SiteId(s)) for s in sites),
                          (Occurrence(start, start + int(hours * 3600)),), profile, PlanKind.CASCADE)


def meta(title: str, precedence: Precedence = Precedence.ROUTINE) -> SessionMeta:
    return SessionMeta(title, 480, None, False, "", "", int(precedence))


def book(store, title: str, sites: list[str], profile: str, at: int) -> str:
    out = store.book(request(sites, profile), meta(title), "usr_org", now=at)
    assert isinstance(out.decision, Accepted), out.decision
    return out.row["id"]


def plan(store, sid: str) -> dict:
    return store.get(sid)["media_plan"]


def down(store, sid: str, link: str) -> int:
    return next((l["down_kbps"] for l in plan(store, sid)["links"] if l["link"] == link), 0)


def test_an_emergency_degrades_only_the_latest_routine_session_on_the_congested_link_and_gives_it_back(store, desk):
    early = book(store, "Budget review", ["f", "c1", "c2"], "hd720", at=100)  # c1 4280 down
    late = book(store, "Training", ["f", "c1", "c3"], "sd", at=200)  # c1 1760 down: 6040 of 7500
    elsewhere = book(store, "Elsewhere", ["p", "f"], "hd720", at=300)
    opened = desk.open(request(["p", "f", "c1"], "sd"), meta("Flood", Precedence.EMERGENCY), "usr_duty", T0 - 5)
    assert isinstance(opened.outcome.decision, Accepted) and not opened.limited
    (r,) = opened.records  # c1 was 300 kbit/s short: the latest booked gives 840, nothing more
    assert (r["session_id"], r["link"], r["direction"], r["kind"], r["step"]) == (late, "c1", "down", "degrade", "speaker")
    assert (r["from_kbps"], r["to_kbps"], r["sites"]) == (1760, 920, ["c1"])
    assert plan(store, late)["layouts"] == {"c1": "speaker"} and down(store, late, "c1") == 920
    assert down(store, early, "c1") == 4280 and "preempted" not in plan(store, elsewhere)
    (change,) = opened.changes
    assert change.session == late and change.layouts == {"c1": "speaker"} and not change.dropped
    # admission sees the degraded hold at once: the link has 7500 − 4280 − 920 − 1760 = 540 left
    assert store.all_link_peaks(T0, T0 + 3600)[("c1", "down")] == 4280 + 920 + 1760

    ended = desk.end(opened.outcome.row["id"], T0 + 600)
    assert [(x["session_id"], x["kind"], x["step"], x["to_kbps"]) for x in ended.records] == [(late, "restore", "as booked", 1760)]
    assert "preempted" not in plan(store, late) and plan(store, late)["layouts"] == {}
    history = desk.records(session=late)
    assert [x["kind"] for x in history] == ["degrade", "restore"]


def test_degrade_before_drop_two_emergencies_at_once_and_a_shortfall_limits_the_emergencys_own_sites(store, desk):
    a = book(store, "A", ["f", "c1", "c2"], "hd720", at=100)
    b = book(store, "B", ["f", "c1", "c3"], "sd", at=200)
    first = desk.open(request(["p", "f", "c1"], "hd720"), meta("Fire", Precedence.EMERGENCY), "usr_duty", T0 - 5)
    assert isinstance(first.outcome.decision, Accepted)
    # 4280 + 1760 + 4280 − 7500 = 2820 short: B (latest) down to audio frees 1680, then A to speaker frees 2100
    # of the 1140 still needed: degraded, none dropped
    assert [(x["session_id"], x["kind"], x["step"], x["to_kbps"]) for x in first.records] == [
        (b, "degrade", "audio", 80), (a, "degrade", "speaker", 2180)]
    second = desk.open(request(["p", "f", "c1"], "hd720", start=T0 + 60),
                       meta("Second fire", Precedence.EMERGENCY), "usr_duty", T0 + 55)
    assert isinstance(second.outcome.decision, Accepted)
    touched = {x["session_id"] for x in second.records if x["kind"] != "limit"}
    assert first.outcome.row["id"] not in touched  # an emergency never gives way to another
    assert {x["kind"] for x in second.records if x["session_id"] in (a, b)} <= {"degrade", "drop"}
    # Even with A and B dropped, 4280 + 4280 > 7500: the second emergency's c1 takes less, and says why
    limited = {x["site"]: x for x in second.limited}
    assert limited["c1"]["receives"] in ("speaker", "audio") and "County c1" in limited["c1"]["reason"]
    sp = plan(store, second.outcome.row["id"])
    assert sp["layouts"]["c1"] == limited["c1"]["receives"]
    peaks = store.all_link_peaks(T0 + 60, T0 + 3600)
    assert peaks[("c1", "down")] <= 7500  # what is held now fits the link
    assert json.loads(json.dumps(desk.records(emergency=second.outcome.row["id"])))  # exportable as JSON


def test_an_emergency_takes_a_room_held_at_lower_precedence_its_holder_moves_to_another_room(store, desk):
    a = book(store, "A", ["f", "c1", "c2"], "hd720", at=100)
    taken_room = next(x["room"] for x in store.get(a)["sites"] if x["site"] == "c1")
    req = request(["p", "f", "c1"], "hd720")
    pinned = BookingRequest(req.host_site, (*req.sites[:2], SiteChoice(SiteId("c1"), RoomId(taken_room))),
                            req.occurrences, req.profile, req.plan)
    opened = desk.open(pinned, meta("Fire", Precedence.EMERGENCY), "usr_duty", T0 - 5)
    assert isinstance(opened.outcome.decision, Accepted)
    assert opened.outcome.decision.rooms[SiteId("c1")] == taken_room
    moved = [r for r in opened.records if r["kind"] == "move"]
    assert [(r["session_id"], r["link"], r["step"]) for r in moved] == [(a, f"c1/{taken_room}", "r1")]
    after = store.get(a)
    assert next(x["room"] for x in after["sites"] if x["site"] == "c1") == "r1"
    assert after["media_plan"]["rooms_moved"]["c1"]["from"] == taken_room and after["sequence"] == 1


ONE_ROOM = parse_topology({"network": "county", "sites": [
    {"id": "p", "level": "province", "rooms": ROOMS, "name": "Province"},
    {"id": "f", "level": "prefecture", "parent": "p", "uplink_mbps": 155, "rooms": ROOMS, "name": "Prefecture"},
    {"id": "c1", "level": "county", "parent": "f", "uplink_mbps": 10, "rooms": [{"id": "hall"}], "name": "County c1"},
    {"id": "c2", "level": "county", "parent": "f", "uplink_mbps": 10, "rooms": ROOMS, "name": "County c2"}]})


def test_an_emergency_refused_for_a_room_another_emergency_holds_takes_nothing_from_anyone(store):
    assert store.set_topology(ONE_ROOM).applied
    desk = Preemptions(store)
    first = desk.open(request(["p", "c1"], "sd"), meta("Fire", Precedence.EMERGENCY), "usr_duty", T0 - 5)
    assert isinstance(first.outcome.decision, Accepted)
    a = book(store, "A", ["f", "c2"], "hd720", at=100)
    busy = book(store, "B", ["f", "c2"], "hd720", at=200)  # c2's downlink is full: an emergency there takes from B
    opened = desk.open(request(["p", "c2", "c1"], "hd720"), meta("Second", Precedence.EMERGENCY), "usr_duty", T0 - 4)
    assert not isinstance(opened.outcome.decision, Accepted)
    (v,) = [v for v in opened.outcome.decision.violations if v.kind == "room"]
    assert (v.site, v.room, v.conflicting_sessions) == ("c1", "hall", (first.outcome.row["id"],))
    assert "preempted" not in plan(store, busy) and "preempted" not in plan(store, a)  # nothing was taken
    assert {r["emergency_id"] for r in desk.records()} <= {first.outcome.row["id"]}


def test_the_dry_check_names_what_the_opening_then_takes(store, desk):
    late = book(store, "Training", ["f", "c1", "c3"], "sd", at=200)
    book(store, "Budget review", ["f", "c1", "c2"], "hd720", at=100)
    req = request(["p", "f", "c1"], "sd")
    preview = desk.preview(req, Precedence.EMERGENCY, T0 - 5)
    assert preview.plan.admitted and list(preview.plan.yielding) == [late]
    assert "preempted" not in plan(store, late)  # the dry check took nothing
    opened = desk.open(req, meta("Flood", Precedence.EMERGENCY), "usr_duty", T0 - 5)
    assert [(r["session_id"], r["kind"], r["step"]) for r in opened.records] == [
        (st.session, st.link.kind, st.link.step) for st in preview.plan.steps]
