"""Booking windows and their recurrence (RFC 5545 RRULE via python-dateutil).

Times arrive as ISO 8601 with an offset; occurrences are expanded in that
fixed offset (the province keeps one offset all year) and returned in epoch
seconds.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dateutil.rrule import rrulestr

from rooms.admission import Occurrence, RequestError
from rooms.timeline import MAX_OCCURRENCE_S

BOOKING_HORIZON = timedelta(days=400)  # nothing is booked further ahead than this
MAX_OCCURRENCES = 366


def parse_instant(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise RequestError("invalid_time", f"{name} must be an ISO 8601 string with an offset, e.g. 2026-12-01T09:00:00+08:00")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError("invalid_time", f"{name}={value!r} is not ISO 8601") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise RequestError("invalid_time", f"{name}={value!r} has no UTC offset; add one such as +08:00")
    return t


def check_window(start: datetime, end: datetime, now: datetime) -> None:
    if end <= start:
        raise RequestError("invalid_window", f"end {end.isoformat()} is not after start {start.isoformat()}")
    if (end - start).total_seconds() > MAX_OCCURRENCE_S:
        raise RequestError("window_too_long", "a session lasts at most 24 h; use `recurrence` for repeated days")
    if end <= now:
        raise RequestError("in_the_past", f"the window ended already ({end.isoformat()})")
    if start > now + BOOKING_HORIZON:
        raise RequestError("too_far_ahead", f"start {start.isoformat()} is beyond the booking horizon of {BOOKING_HORIZON.days} days")


def expand(start: datetime, end: datetime, rule: str | None, now: datetime) -> tuple[Occurrence, ...]:
    """Every occurrence of the window; a single one without a rule."""
    check_window(start, end, now)
    if not rule:
        return (Occurrence(int(start.timestamp()), int(end.timestamp())),)
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    try:
        rr = rrulestr(text, dtstart=start)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError("invalid_recurrence", f"recurrence {rule!r}: {exc}") from None
    upper = text.upper()
    if "COUNT=" not in upper and "UNTIL=" not in upper:
        raise RequestError("unbounded_recurrence", "recurrence must end: give COUNT or UNTIL")
    try:
        limit = now + BOOKING_HORIZON
        starts = []
        for t in rr:
            if t > limit:
                raise RequestError("too_far_ahead", f"occurrence {t.isoformat()} is beyond the booking horizon of {BOOKING_HORIZON.days} days")
            starts.append(t)
            if len(starts) > MAX_OCCURRENCES:
                raise RequestError("too_many_occurrences", f"a series has at most {MAX_OCCURRENCES} occurrences")
    except RequestError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError("invalid_recurrence", f"recurrence {rule!r}: {exc}") from None
    if not starts:
        raise RequestError("invalid_recurrence", f"recurrence {rule!r} yields no occurrence")
    length = end - start
    return tuple(Occurrence(int(t.timestamp()), int((t + length).timestamp())) for t in starts)


def iso(ts: int, offset_min: int) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(minutes=offset_min))).isoformat()


def offset_minutes(t: datetime) -> int:
    off = t.utcoffset()
    return int(off.total_seconds() // 60) if off is not None else 0
