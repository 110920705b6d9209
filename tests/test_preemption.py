"""Pre-emption for an emergency, as a pure decision: only congested links, only what each lacks,
lowest precedence then latest booked first, degrade before drop; restoration gives back what fits."""
from __future__ import annotations

from rooms.ids import Direction, LinkId
from rooms.preemption import Holding, Precedence, preempt, restore

R, P, E = Precedence.ROUTINE, Precedence.PRIORITY, Precedence.EMERGENCY
NONGAN, YUSHU, CC = (LinkId("cc-nongan"), Direction.DOWN), (LinkId("cc-yushu"), Direction.DOWN), (LinkId("cc"), Direction.DOWN)
HD720 = (("hd720", 4280), ("sd", 1760), ("speaker-only sd", 920))  # a county receiving a session, richest first


def hold(session: str, precedence: Precedence, booked_at: int, ladder=HD720, step: int = 0) -> Holding:
    return Holding(session, precedence, booked_at, ladder, step)


def test_an_emergency_on_a_full_county_link_degrades_the_latest_routine_session_only_as_far_as_needed():
    # Nong'an's link (7500 admitted) holds 4280 + 1760 = 6040; the emergency needs 1760 (SD): 300 short.
    held = {NONGAN: [hold("early", R, 100), hold("late", R, 200, step=1)]}
    out = preempt({NONGAN: 1760}, {NONGAN: 7500}, held, E)
    (a,) = out.actions
    assert (a.session, a.kind, a.step, a.freed_kbps) == ("late", "degrade", "speaker-only sd", 840)  # latest first
    assert out.fits


def test_degrade_every_victim_before_dropping_any_and_drop_in_the_same_order():
    held = {NONGAN: [hold("early", R, 100), hold("late", R, 200)]}  # 8560 held: the link is overbooked by an override
    mild = preempt({NONGAN: 4280}, {NONGAN: 7500}, held, E)  # 5340 short: degrading both is enough
    assert [(a.session, a.kind, a.step) for a in mild.actions] == [("late", "degrade", "speaker-only sd"),
                                                                   ("early", "degrade", "sd")]  # the mildest that covers
    out = preempt({NONGAN: 7000}, {NONGAN: 7500}, held, E)  # 8060 short: degrading frees 6720, then drops
    kinds = [(a.session, a.kind, a.step) for a in out.actions]
    assert kinds == [("late", "degrade", "speaker-only sd"), ("early", "degrade", "speaker-only sd"),
                     ("late", "drop", "dropped"), ("early", "drop", "dropped")]
    assert sum(a.freed_kbps for a in out.actions) == 8560 and out.fits


def test_priority_sessions_give_way_after_routine_ones_and_equal_precedence_never():
    held = {NONGAN: [hold("prio", P, 300), hold("routine", R, 100), hold("other emergency", E, 50, step=0)]}
    out = preempt({NONGAN: 3000}, {NONGAN: 12000}, held, E)  # held 12840 + 3000: 3840 short
    assert [a.session for a in out.actions] == ["routine", "prio"]
    assert all(a.session != "other emergency" for a in out.actions)


def test_uncongested_links_are_untouched_and_a_shortfall_is_reported():
    held = {NONGAN: [hold("a", R, 100)], YUSHU: [hold("b", R, 100)], CC: [hold("c", R, 100)]}
    out = preempt({NONGAN: 4280, YUSHU: 1000, CC: 1000}, {NONGAN: 7500, YUSHU: 7500, CC: 116250}, held, E)
    assert {a.session for a in out.actions} == {"a"}  # Yushu and the backbone had room
    greedy = preempt({NONGAN: 9000}, {NONGAN: 7500}, {NONGAN: [hold("a", R, 100)]}, E)
    assert not greedy.fits and greedy.short == {NONGAN: 1500}  # even with "a" dropped, 1500 kbit/s short


def test_restoration_gives_back_the_richest_step_that_fits_highest_precedence_first():
    taken = [(NONGAN, hold("late", R, 200, step=2)), (NONGAN, hold("prio", P, 300, step=3))]  # prio was dropped
    actions = restore(taken, {NONGAN: 7500}, {NONGAN: 1000})  # 6500 free once the emergency is gone
    assert [(a.session, a.step) for a in actions] == [("prio", "hd720"), ("late", "sd")]  # 4280, then 1760 fits
    assert restore(taken, {NONGAN: 7500}, {NONGAN: 7000}) == []  # nothing richer fits: both keep what they have


def test_rooms_an_emergency_takes_its_room_the_holder_moves_main_first_or_gives_it_up():
    from rooms.preemption import RoomAction, RoomHold, take_rooms
    rooms = {"jl": ["emergency", "main", "small"], "cc": ["main"]}
    routine = RoomHold("r", "jl", "emergency", Precedence.ROUTINE, 10, ((0, 100),))
    got = take_rooms([("jl", "emergency")], rooms, [routine], 50, 80, Precedence.EMERGENCY)
    assert got.rooms == {"jl": "emergency"} and got.actions == (RoomAction("r", "jl", "emergency", "move", "main"),)
    # main is busy later in the routine's own time (not the emergency's): it moves to the next free room
    later = RoomHold("x", "jl", "main", Precedence.ROUTINE, 5, ((90, 120),))
    got = take_rooms([("jl", "emergency")], rooms, [routine, later], 50, 80, Precedence.EMERGENCY)
    assert got.actions == (RoomAction("r", "jl", "emergency", "move", "small"),)
    # no other room of the site: it gives the room up
    got = take_rooms([("cc", None)], rooms, [RoomHold("r", "cc", "main", Precedence.PRIORITY, 1, ((0, 100),))],
                     50, 80, Precedence.EMERGENCY)
    assert got.rooms == {"cc": "main"} and got.actions == (RoomAction("r", "cc", "main", "release"),)


def test_rooms_two_emergencies_get_two_rooms_and_never_take_from_each_other():
    from rooms.preemption import RoomAction, RoomHold, take_rooms
    rooms = {"jl": ["main", "emergency"], "v": ["unit"]}
    first = RoomHold("e1", "jl", "emergency", Precedence.EMERGENCY, 10, ((0, 100),))
    routine = RoomHold("r", "jl", "main", Precedence.ROUTINE, 5, ((0, 100),))
    got = take_rooms([("jl", "emergency")], rooms, [first, routine], 50, 80, Precedence.EMERGENCY)
    assert got.rooms == {"jl": "main"} and got.actions == (RoomAction("r", "jl", "main", "release"),)
    unit = RoomHold("e1", "v", "unit", Precedence.EMERGENCY, 10, ((0, 100),))
    got = take_rooms([("v", None)], rooms, [unit], 50, 80, Precedence.EMERGENCY)
    assert got.refused == ("v",) and got.actions == () and got.rooms == {}
    # a routine booking never takes a room
    got = take_rooms([("jl", "main")], rooms, [routine], 50, 80, Precedence.ROUTINE)
    assert got.rooms == {"jl": "emergency"} and got.actions == ()
