"""Rooms are pre-empted like links (issue 25), on the demo network and in the database (SQLite and
PostgreSQL): a routine session audio-only in the province's emergency room for the next three hours
does not stop the vehicle preset (it moves to the main room, is told by a new invite sequence, and its
history says so); a second emergency at the same time gets the province's other room (two emergencies,
two rooms), taking it from the routine session, which then has no free room and gives its site up
until the first emergency ends and the emergency room comes back to it."""
from __future__ import annotations

from rooms.admission import Accepted, BookingRequest, Occurrence, SiteChoice
from rooms.booking_form import SessionMeta
from rooms.ids import PlanKind, RoomId, SiteId
from rooms.preemption import Precedence
from rooms.presets import preset_sites
from rooms.store.preemptions import Preemptions, what

NOW = 1_900_000_000


def choices(host: str, others: list[str]) -> tuple[SiteChoice, ...]:
    def one(x: str) -> SiteChoice:
        site, _, room = x.partition("/")
        return SiteChoice(SiteId(site), RoomId(room) if room else None)
    return (one(host), *(one(x) for x in others))


def emergency(topo, preset: str, start: int, hours: float = 2) -> BookingRequest:
    host, others = preset_sites(topo, preset)
    return BookingRequest(SiteId(host.split("/")[0]), choices(host, others), (Occurrence(start, start + int(hours * 3600)),),
                          "sd", PlanKind.CASCADE, auto_layouts=True)


def rooms_of(store, sid: str) -> dict[str, str]:
    return {x["site"]: x["room"] for x in store.get(sid)["sites"]}


def test_a_routine_session_in_the_emergency_room_gives_way_and_two_emergencies_run_at_once(store):
    topo = store.topology()
    desk = Preemptions(store)
    routine = store.book(BookingRequest(SiteId("jl"), choices("jl/emergency", ["cc"]), (Occurrence(NOW, NOW + 3 * 3600),),
                                        "audio", PlanKind.CASCADE),
                         SessionMeta("Morning audio call", 480, None, False, "", ""), "usr_olga", now=NOW - 100)
    assert isinstance(routine.decision, Accepted)
    rid = routine.row["id"]
    assert rooms_of(store, rid)["jl"] == "emergency"

    vehicle = desk.open(emergency(topo, "vehicle", NOW + 60), SessionMeta("Convoy", 480, None, False, "", "", 2),
                        "usr_duty", NOW + 59)
    assert isinstance(vehicle.outcome.decision, Accepted), vehicle.outcome.decision
    assert rooms_of(store, vehicle.outcome.row["id"])["jl"] == "emergency"
    (moved,) = vehicle.records
    assert (moved["session_id"], moved["kind"], moved["link"], moved["step"]) == (rid, "move", "jl/emergency", "main")
    assert what(topo, moved) == f"{topo.sites['jl'].name} moves from {_room(topo, 'jl', 'emergency')} to {_room(topo, 'jl', 'main')}"
    after = store.get(rid)
    assert rooms_of(store, rid)["jl"] == "main" and after["sequence"] == 1  # told: its invites go again
    assert after["media_plan"]["rooms_moved"]["jl"] == {"from": "emergency", "to": "main", "by": vehicle.outcome.row["id"],
                                                        "at": NOW + 59}
    (change,) = vehicle.changes
    assert change.kinds == {"move"} and change.view["sites"][0]["room"] == "main" and not change.dropped

    # A second emergency at the same time: the host's emergency room is the first one's, so it takes the
    # province's main room, which the routine session now holds and cannot leave for a free one.
    second = desk.open(emergency(topo, "emergency-offices", NOW + 120), SessionMeta("Floods", 480, None, False, "", "", 2),
                       "usr_duty", NOW + 119)
    assert isinstance(second.outcome.decision, Accepted), second.outcome.decision
    assert rooms_of(store, second.outcome.row["id"])["jl"] == "main"
    released = [r for r in second.records if r["kind"] == "release"]
    assert [(r["session_id"], r["link"], r["step"]) for r in released] == [(rid, "jl/main", "released")]
    out = store.get(rid)
    assert out["media_plan"]["dropped"] == ["jl"] and "jl" in out["media_plan"]["rooms_given"]
    assert all(l["link"] != "cc" or l["down_kbps"] > 0 for l in out["media_plan"]["links"])  # cc still meets
    # Neither emergency took anything from the other.
    assert {r["session_id"] for r in [*vehicle.records, *second.records]} == {rid}

    ended = desk.end(vehicle.outcome.row["id"], NOW + 600)  # the emergency room is free again: jl is back there
    assert [(r["session_id"], r["kind"], r["step"]) for r in ended.records] == [(rid, "restore", "emergency")]
    back = store.get(rid)
    assert "dropped" not in back["media_plan"] and rooms_of(store, rid)["jl"] == "emergency"
    assert [r["kind"] for r in desk.records(session=rid)] == ["move", "release", "restore"]


def _room(topo, site: str, room: str) -> str:
    return next(r.name for r in topo.sites[site].rooms if r.id == room)
