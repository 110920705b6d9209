"""The earliest later start by interval arithmetic, held against a plain scan of every candidate."""
from __future__ import annotations

import random

import pytest

from rooms.admission import _shift_by_intervals, fits_when_alone, plan_for
from rooms.admission import Accepted, BookingRequest, Existing, Occurrence, SiteChoice, evaluate, earliest_shift, normalise
from rooms.ids import PlanKind, SessionId
from rooms.later_start import first_free, forbidden_shifts, intersect, over_limit
from rooms.store.bookings import _hold
from rooms.timeline import Booked
from rooms.topology import demo_topology

T = demo_topology()
H, DAY = 3600, 86400
T0 = 1_900_000_000
SITES = ["jl", "cc", "cc-nongan", "cc-yushu", "jlc", "sp", "sp-shuangliao", "yb", "yb-yanji", "dept-health"]


def test_over_limit_merges_and_releases_before_takes():
    b = [Booked("a", 0, 10, 3), Booked("b", 10, 20, 3), Booked("c", 5, 15, 3), Booked("d", 30, 40, 9)]
    assert over_limit(b, 5) == [(5, 15), (30, 40)]  # at 10 one ends as another starts: never 9
    assert over_limit(b, 9) == []
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    # a window [100, 160) meets [130, 200) for shifts -29..99
    assert forbidden_shifts([(130, 200)], 100, 160) == [(-29, 100)]
    assert first_free([(-29, 100), (100, 150), (170, 180)], 1, 1000) == 150
    assert first_free([(0, 2000)], 1, 1000) is None


def _reference(ex: Existing, req: BookingRequest, horizon: int) -> int | None:
    """Every reservation end is a candidate start; the first that evaluates as accepted."""
    ends = sorted({b.end - o.start for iv in [*ex.links.values(), *ex.nodes.values(), *ex.rooms.values()]
                   for b in iv for o in req.occurrences if 0 < b.end - o.start <= horizon})
    return next((d for d in ends if isinstance(evaluate(T, ex, req.shifted(d)), Accepted)), None)


@pytest.mark.parametrize("seed", range(12))
def test_intervals_find_the_same_start_as_scanning_every_candidate(seed):
    rng = random.Random(seed)
    ex = Existing()

    def random_req(start: int) -> BookingRequest:
        sites = rng.sample(SITES, rng.randint(2, 5))
        length = rng.choice([H // 2, H, 2 * H, 3 * H])
        occ = tuple(Occurrence(start + k * DAY, start + k * DAY + length) for k in range(rng.choice([1, 1, 3])))
        return normalise(T, BookingRequest(sites[0], tuple(SiteChoice(s) for s in sites), occ,
                                           rng.choice(["hd720", "sd", "audio"]), rng.choice(list(PlanKind))))
    for i in range(300):  # a busy calendar over four days
        r = random_req(T0 + rng.randrange(4 * 24 * 4) * 900)
        d = evaluate(T, ex, r)
        if isinstance(d, Accepted):
            _hold(ex, SessionId(f"s{i}"), d)
    compared = 0
    for _ in range(40):
        r = random_req(T0 + rng.randrange(2 * 24 * 4) * 900)
        if isinstance(evaluate(T, ex, r), Accepted):
            continue
        want = _reference(ex, r, 3 * DAY)
        assert earliest_shift(T, ex, r, 3 * DAY) == want, r
        # the interval search on its own, without the scan it falls back to
        plan = plan_for(T, r)
        assert (_shift_by_intervals(T, ex, r, plan, 3 * DAY) if fits_when_alone(T, plan) else None) == want, r
        compared += 1
    assert compared > 5
