"""The admission decision as a pure function: PRODUCT.md's worked example and its rules."""
from rooms.admission import (Accepted, BookingRequest, Existing, Occurrence, Refused, SiteChoice, alternatives,
                             evaluate, normalise)
from rooms.ids import Direction, PlanKind, SessionId
from rooms.plan import media_plan
from rooms.store.bookings import _hold
from rooms.topology import demo_topology

T = demo_topology()
H = 3600
T0 = 1_900_000_000


def req(sites, profile="hd1080", plan=PlanKind.CASCADE, start=T0, end=T0 + H, host=None):
    choices = tuple(SiteChoice(s.split("/")[0], s.split("/")[1] if "/" in s else None) for s in sites)
    return normalise(T, BookingRequest(host or choices[0].site, choices, (Occurrence(start, end),), profile, plan))


def hold(ex, r):
    d = evaluate(T, ex, r)
    assert isinstance(d, Accepted), d
    _hold(ex, SessionId(f"s{id(r)}"), d)


def test_worked_example_county_at_hd1080_is_refused_with_hd720_offered():
    r = req(["jl", "cc-nongan", "jlc"], "hd1080")
    d = evaluate(T, Existing(), r)
    assert isinstance(d, Refused)
    (v,) = [v for v in d.violations if v.link == "cc-nongan"]
    assert v.direction is Direction.DOWN and v.demand_kbps == 8480 and v.available_kbps == 7500
    assert (v.start, v.end) == (T0, T0 + H)
    alts = alternatives(T, Existing(), r)
    assert alts[0].profile == "hd720"


def test_worked_example_second_hd720_at_the_county_refused_but_four_sd_fit():
    ex = Existing()
    hold(ex, req(["jl", "cc-nongan", "jlc"], "hd720"))
    second = evaluate(T, ex, req(["cc", "cc-nongan/emergency", "sp"], "hd720"))
    assert isinstance(second, Refused)
    assert {(v.link, v.direction) for v in second.violations} == {("cc-nongan", Direction.DOWN)}
    v = second.violations[0]
    assert v.demand_kbps == 4280 and v.available_kbps == 7500 - 4280



def test_four_sd_fit_on_a_county_link_and_a_fifth_does_not():
    from tests.conftest import small_topology
    t = small_topology()
    ex = Existing()
    for i in range(4):
        r = normalise(t, BookingRequest("p", (SiteChoice("p"), SiteChoice("c"), SiteChoice("f")),
                                        (Occurrence(T0, T0 + H),), "sd", PlanKind.CASCADE))
        d = evaluate(t, ex, r)
        assert isinstance(d, Accepted), i
        _hold(ex, SessionId(f"s{i}"), d)
    d = evaluate(t, ex, r)
    assert isinstance(d, Refused) and d.violations[0].link == "c" and d.violations[0].available_kbps == 7500 - 4 * 1760


def test_central_carries_every_stream_over_the_backbone_cascade_only_the_program():
    sites = ["jl", "cc-nongan", "cc-yushu", "cc-dehui", "cc-jiutai"]
    central = media_plan(T, T.profile("hd720"), PlanKind.CENTRAL, sites)
    cascade = media_plan(T, T.profile("hd720"), PlanKind.CASCADE, sites)
    assert central.load("cc", Direction.DOWN) == 4 * 4280 and central.load("cc", Direction.UP) == 4 * 2180
    # only jl is beyond the Changchun node: one video comes down, the program (2 video) goes up
    assert cascade.load("cc", Direction.DOWN) == 2180 and cascade.load("cc", Direction.UP) == 4280
    assert cascade.load("cc-nongan", Direction.DOWN) == central.load("cc-nongan", Direction.DOWN) == 4280
    assert cascade.attachments["cc-nongan"] == "node-cc" and central.attachments["cc-nongan"] == "node-jl"


def test_sites_under_one_prefecture_leave_the_backbone_idle_in_cascade():
    plan = media_plan(T, T.profile("hd720"), PlanKind.CASCADE, ["cc-nongan", "cc-yushu"])
    assert plan.load("cc", Direction.UP) == 0 and plan.load("cc", Direction.DOWN) == 0


def test_a_room_is_never_booked_twice_and_the_emergency_office_only_when_asked():
    ex = Existing()
    first = req(["cc-nongan", "jl"], "audio")
    assert evaluate(T, ex, first).rooms["cc-nongan"] == "main"  # no room named: the main room
    hold(ex, first)
    # Its main room is taken: a routine booking does not slide into the emergency office unasked.
    second = evaluate(T, ex, req(["cc-nongan", "jlc"], "audio"))
    assert isinstance(second, Refused) and {(v.kind, v.room) for v in second.violations} == {("room", "main")}
    asked = evaluate(T, ex, req(["cc-nongan/emergency", "jlc"], "audio"))
    assert isinstance(asked, Accepted) and asked.rooms["cc-nongan"] == "emergency"
    _hold(ex, SessionId("x"), asked)
    third = evaluate(T, ex, req(["cc-nongan/emergency", "sp"], "audio"))
    assert isinstance(third, Refused) and {v.kind for v in third.violations} == {"room"}
    pinned = evaluate(T, ex, req(["cc-nongan/main", "sp"], "audio", start=T0 + H, end=T0 + 2 * H))
    assert isinstance(pinned, Accepted)  # touching windows do not overlap


def test_violation_window_is_the_part_of_the_request_that_is_over():
    ex = Existing()
    hold(ex, req(["jl", "cc-nongan", "jlc"], "hd720", start=T0 + H, end=T0 + 2 * H))
    d = evaluate(T, ex, req(["cc", "cc-nongan", "sp"], "hd720", start=T0, end=T0 + 3 * H))
    assert isinstance(d, Refused)
    assert (d.violations[0].start, d.violations[0].end) == (T0 + H, T0 + 2 * H)


def test_earliest_start_alternative_is_when_the_blocking_session_ends():
    ex = Existing()
    hold(ex, req(["jl", "cc-nongan", "jlc"], "hd720", start=T0, end=T0 + 2 * H))
    r = req(["cc", "cc-nongan/emergency", "sp"], "hd720", start=T0 + H, end=T0 + 2 * H)  # its main room is taken
    alts = alternatives(T, ex, r)
    shifts = [a.shift_s for a in alts if a.shift_s is not None]
    assert shifts == [H]  # starts at T0 + 2h, right when the first session frees the link
    assert any(a.profile == "sd" for a in alts)


def test_media_node_leg_capacity_binds():
    from rooms.topology import parse_topology
    t = parse_topology({"sites": [
        {"id": "p", "rooms": [{"id": f"r{i}"} for i in range(10)], "media_node_legs": 3},
        *[{"id": f"c{i}", "parent": "p", "uplink_mbps": 100, "rooms": [{"id": "m"}]} for i in range(4)]]})
    r = normalise(t, BookingRequest("c0", tuple(SiteChoice(f"c{i}") for i in range(4)),
                                    (Occurrence(T0, T0 + H),), "sd", PlanKind.CENTRAL))
    d = evaluate(t, Existing(), r)
    assert isinstance(d, Refused) and d.violations[0].kind == "media_node" and d.violations[0].demand_legs == 4
