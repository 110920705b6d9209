"""The earliest later start that fits, found by interval arithmetic rather than trial and error.

For each resource the request uses (a link direction, a media node, the rooms a site could
take) the times where that resource is over what the request may add form a set of
intervals. A window [s+d, e+d) fits a resource iff it meets none of them, so each over
interval [a, b) forbids the shifts a-e < d < b-s. A site with several rooms is blocked only
where every one of its rooms is (it keeps one room for every occurrence); occurrences add
their own forbidden shifts. The answer is
the smallest d >= 1 outside the union: one sweep per resource, whatever the number of trials
a scan of candidate starts would have needed (scripts/bench/admission.py shows the effect).
"""
from __future__ import annotations

from typing import Iterable, Sequence

from rooms.timeline import Booked, union

Span = tuple[int, int]  # half-open [a, b)


def over_limit(bookings: Iterable[Booked], threshold: int) -> list[Span]:
    """Where the summed amounts exceed the threshold, as sorted, merged half-open spans."""
    events: list[tuple[int, int]] = []
    for b in bookings:
        if b.end > b.start:
            events.append((b.start, b.amount))
            events.append((b.end, -b.amount))
    events.sort()  # at one instant the releases (negative) come first
    out: list[Span] = []
    level, i, n = 0, 0, len(events)
    open_at: int | None = None
    while i < n:
        t = events[i][0]
        while i < n and events[i][0] == t:
            level += events[i][1]
            i += 1
        if level > threshold and open_at is None:
            open_at = t
        elif level <= threshold and open_at is not None:
            out.append((open_at, t))
            open_at = None
    return out


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    """The intersection of two sorted lists of disjoint spans."""
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def forbidden_shifts(over: Iterable[Span], start: int, end: int) -> list[Span]:
    """Shifts d (as half-open integer spans) that put [start+d, end+d) across an over span."""
    return [(a - end + 1, b - start) for a, b in over]


merged = union  # sorted, disjoint spans covering the same integers (one implementation, rooms/timeline.py)


def first_free(forbidden: list[Span], lowest: int, highest: int) -> int | None:
    """The smallest integer in [lowest, highest] outside every span, or None."""
    d = lowest
    for lo, hi in sorted(forbidden):
        if lo > d:
            break
        d = max(d, hi)
        if d > highest:
            return None
    return d if d <= highest else None
