"""What a booking reads: its own occurrences' windows (and, for a refusal, as far ahead as its later
start needed), never the calendar between or beyond. The statements are the ones SQLite runs, as its
trace callback reports them with their bound values."""
from __future__ import annotations

import random
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import event

from rooms.admission import Accepted, BookingRequest, Occurrence, Refused, SiteChoice
from rooms.booking_form import SessionMeta
from rooms.ids import PlanKind, SiteId
from rooms.store.bookings import SHIFT_LOOKS_S, BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.timeline import MAX_OCCURRENCE_S, uncovered
from rooms.topology import demo_topology
from tests.conftest import tomorrow_at

DAY = 86400
META = SessionMeta("t", 480, None, False, "", "")
READ = re.compile(r"FROM session_occurrence WHERE start >= (-?\d+) AND start < (-?\d+)")


@pytest.fixture
def traced(tmp_path):
    """A store on SQLite and the occurrence-index reads (lo, hi) of every statement it runs."""
    engine = make_engine(f"sqlite:///{tmp_path}/reads.db")
    statements: list[str] = []
    event.listen(engine, "connect", lambda dbapi, _rec: dbapi.set_trace_callback(statements.append))
    upgrade(engine)
    store = BookingStore(engine)
    store.set_topology(demo_topology())

    def reads() -> list[tuple[int, int]]:
        got = [(int(m[1]), int(m[2])) for s in statements if (m := READ.search(s))]
        statements.clear()
        return got
    yield store, reads
    engine.dispose()


def request(sites: list[str], *occurrences: tuple[int, int], profile: str = "sd") -> BookingRequest:
    return BookingRequest(SiteId(sites[0]), tuple(SiteChoice(SiteId(s)) for s in sites),
                          tuple(Occurrence(s, e) for s, e in occurrences), profile, PlanKind.CASCADE)


def at(hour: int, day: int = 0) -> int:
    return int(tomorrow_at(hour).timestamp()) + day * DAY


def test_a_series_reads_each_occurrence_window_not_the_weeks_between(traced):
    store, reads = traced
    for day in range(0, 29, 2):  # a calendar with a session every other day in between
        assert isinstance(store.book(request(["cc-nongan", "jl"], (at(10, day), at(11, day))), META, "u").decision,
                          Accepted)
    reads()
    series = ((at(14), at(15)), (at(14, 28), at(15, 28)))  # the first and the fifth week
    out = store.book(request(["cc-nongan", "yb-antu"], *series), META, "u")
    assert isinstance(out.decision, Accepted)
    got = reads()
    assert got, "the booking read no occurrence at all"
    for lo, hi in got:
        assert any(s - MAX_OCCURRENCE_S <= lo and hi <= e for s, e in series), (lo, hi, series)


def test_a_refusal_reads_only_as_far_ahead_as_its_later_start(traced):
    store, reads = traced
    # Sessions 10:00-11:00 take every room a booking may have at cc-nongan.
    rooms = len(store.topology().sites[SiteId("cc-nongan")].bookable_rooms)
    for other in ("jl", "cc", "sp-lishu")[:rooms]:
        assert isinstance(store.book(request(["cc-nongan", other], (at(10), at(11))), META, "u").decision, Accepted)
    # A week of sessions elsewhere that the refusal need not read.
    for day in range(1, 8):
        store.book(request(["cc-nongan", "jl"], (at(10, day), at(11, day))), META, "u")
    reads()
    out = store.check(request(["cc-nongan", "sp"], (at(10), at(11))))
    assert isinstance(out.decision, Refused)
    assert {v.kind for v in out.decision.violations} == {"room"}
    assert [a.shift_s for a in out.decision.alternatives if a.shift_s] == [3600]  # once the rooms are free
    got = reads()
    assert got and all(lo >= at(10) - MAX_OCCURRENCE_S and hi <= at(11) + SHIFT_LOOKS_S[0] for lo, hi in got), got


def test_uncovered_is_the_set_difference():
    rng = random.Random(5)
    for _ in range(300):
        want = [(a, a + rng.randint(0, 8)) for a in (rng.randint(0, 40) for _ in range(rng.randint(0, 4)))]
        have_raw = sorted((a, a + rng.randint(1, 8)) for a in (rng.randint(0, 40) for _ in range(rng.randint(0, 4))))
        have: list[tuple[int, int]] = []
        for lo, hi in have_raw:  # sorted and disjoint, as the reader keeps it
            if have and lo <= have[-1][1]:
                have[-1] = (have[-1][0], max(have[-1][1], hi))
            else:
                have.append((lo, hi))
        got = uncovered(want, have)
        points = {t for lo, hi in want for t in range(lo, hi)} - {t for lo, hi in have for t in range(lo, hi)}
        assert {t for lo, hi in got for t in range(lo, hi)} == points, (want, have, got)
        assert all(a[1] < b[0] for a, b in zip(got, got[1:])), got  # sorted, disjoint, not touching
