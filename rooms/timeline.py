"""Sums of interval loads over time: the peak inside a window and where it is exceeded.

Intervals are half-open [start, end) in epoch seconds; one that ends when
another starts does not overlap it.
"""
from __future__ import annotations

import bisect
import operator
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

MAX_OCCURRENCE_S = 24 * 3600  # longest single occurrence; bounds every overlap search


class Booked(NamedTuple):
    """Some amount of a resource (kbit/s, a room, media-node legs) held by a session.

    A NamedTuple, not a dataclass: admission builds hundreds per booking, and a
    tuple is built in a third of the time."""

    session: str
    start: int
    end: int
    amount: int


_start = operator.itemgetter(1)  # Booked.start
_amount = operator.itemgetter(3)  # Booked.amount


class Intervals:
    """Booked intervals of one resource, sorted by start, searchable by window."""

    def __init__(self, items: Iterable[Booked] = (), *, presorted: bool = False):
        self._items = list(items) if presorted else sorted(items, key=_start)
        self._starts = [b.start for b in self._items]

    def add(self, b: Booked) -> None:
        i = bisect.bisect_right(self._starts, b.start)
        self._starts.insert(i, b.start)
        self._items.insert(i, b)

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def total(self) -> int:
        """All the amounts at once: an upper bound of the load at any moment."""
        return sum(map(_amount, self._items))

    def overlapping(self, start: int, end: int) -> list[Booked]:
        lo = bisect.bisect_left(self._starts, start - MAX_OCCURRENCE_S)
        hi = bisect.bisect_left(self._starts, end)
        return [b for b in self._items[lo:hi] if b.end > start]


def union(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint spans covering the same time."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if lo >= hi:
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def uncovered(want: Iterable[tuple[int, int]], have: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the spans `want` outside the spans `have` (`have` sorted and disjoint), sorted, disjoint."""
    out: list[tuple[int, int]] = []
    for lo, hi in union(want):
        for a, b in have:
            if b <= lo:
                continue
            if a >= hi:
                break
            if a > lo:
                out.append((lo, a))
            lo = max(lo, b)
            if lo >= hi:
                break
        if lo < hi:
            out.append((lo, hi))
    return out


@dataclass(frozen=True)
class Excess:
    peak: int  # highest existing sum inside the window
    over_start: int | None  # first and last moment the sum exceeds the threshold
    over_end: int | None


def excess(bookings: Sequence[Booked], start: int, end: int, threshold: int) -> Excess:
    """Peak of the summed amounts inside [start, end), and the span where the sum > threshold."""
    events: list[tuple[int, int]] = []
    for b in bookings:
        s, e = max(b.start, start), min(b.end, end)
        if s < e:
            events.append((s, b.amount))
            events.append((e, -b.amount))
    events.sort(key=lambda ev: (ev[0], ev[1]))  # releases before takes at the same instant
    level = peak = 0
    over_start = over_end = None
    i = 0
    while i < len(events):
        t = events[i][0]
        while i < len(events) and events[i][0] == t:
            level += events[i][1]
            i += 1
        peak = max(peak, level)
        if level > threshold:
            if over_start is None:
                over_start = t
            nxt = events[i][0] if i < len(events) else end
            over_end = nxt
    return Excess(peak, over_start, over_end)
