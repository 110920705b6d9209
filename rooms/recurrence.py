"""Booking windows and their recurrence (RFC 5545 RRULE via python-dateutil).

Times arrive as ISO 8601 with an offset; occurrences are expanded in that
fixed offset (the province keeps one offset all year) and returned in epoch
seconds.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from rooms.admission import Occurrence, RequestError
from rooms.timeline import MAX_OCCURRENCE_S

BOOKING_HORIZON = timedelta(days=400)  # nothing is booked further ahead than this
MAX_OCCURRENCES = 366
# Months dateutil may step through looking for the next occurrence: past the horizon
# (about 13 months) with room to spare. A rule that never yields a date (Feb 30) makes
# dateutil search to the year 9999 otherwise: seconds of CPU per request.
MONTH_BUDGET = 30
FREQS = {"DAILY": (DAILY, 1), "WEEKLY": (WEEKLY, 7), "MONTHLY": (MONTHLY, 28), "YEARLY": (YEARLY, 365)}
REFUSED_PARTS = ("DTSTART", "BYHOUR", "BYMINUTE", "BYSECOND", "BYEASTER")


class _SearchTooLong(Exception):
    pass


class _BudgetedRule(rrule):
    """An rrule whose search stops after MONTH_BUDGET months without reaching `until`.

    dateutil's `_iterinfo.rebuild` reads `_bynweekday` once for every month (or year) its
    search steps into, whatever the frequency; counting those reads is the step budget.
    Pinned to python-dateutil's iterator (tests/test_recurrence.py fails if it moves).
    """

    @property
    def _bynweekday(self):  # type: ignore[no-untyped-def]
        steps = self.__dict__["_steps"] = self.__dict__.get("_steps", 0) + 1
        if steps > MONTH_BUDGET:
            raise _SearchTooLong
        return self.__dict__["_bynweekday"]


def _parts(text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in text.split(";"):
        name, _, value = item.partition("=")
        parts[name.strip().upper()] = value.strip()
    return parts


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
    if any(c in text for c in "\r\n:"):
        raise RequestError("invalid_recurrence", "recurrence is one RRULE value (FREQ=...;COUNT=...); "
                           "the series starts at `start`, so no DTSTART, EXDATE or other lines")
    parts = _parts(text)
    refused = [p for p in REFUSED_PARTS if p in parts]
    if refused:
        raise RequestError("invalid_recurrence", f"recurrence may not set {', '.join(refused)}: the series starts "
                           "at `start` and keeps its time of day")
    freq = parts.get("FREQ", "").upper()
    if freq not in FREQS:
        raise RequestError("invalid_recurrence", f"FREQ={freq or '?'}: a session repeats DAILY, WEEKLY, MONTHLY "
                           "or YEARLY (each occurrence is a window of up to 24 h)")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise RequestError("unbounded_recurrence", "recurrence must end: give COUNT or UNTIL")
    interval = parts.get("INTERVAL", "1")
    unit_days = FREQS[freq][1]
    if not interval.isdigit() or not 1 <= int(interval) * unit_days <= BOOKING_HORIZON.days:
        raise RequestError("invalid_recurrence", f"INTERVAL={interval}: with FREQ={freq} the second occurrence would "
                           f"fall beyond the {BOOKING_HORIZON.days}-day booking horizon; give 1 to "
                           f"{BOOKING_HORIZON.days // unit_days}")
    limit = now + BOOKING_HORIZON
    try:
        rr = rrulestr(text, dtstart=start)
        if not isinstance(rr, rrule):
            raise ValueError("not a single RRULE")
        until = rr._until
        if until is not None and until > limit:
            raise RequestError("too_far_ahead", f"UNTIL {until.isoformat()} is beyond the booking horizon of "
                               f"{BOOKING_HORIZON.days} days")
        bounded = rr.replace(until=limit, count=None) if until is None else rr
        bounded.__class__ = _BudgetedRule
        starts: list[datetime] = []
        try:
            for t in bounded:
                starts.append(t)
                if len(starts) > MAX_OCCURRENCES:
                    raise RequestError("too_many_occurrences", f"a series has at most {MAX_OCCURRENCES} occurrences")
                if rr._count is not None and len(starts) == rr._count:
                    break
        except _SearchTooLong:
            pass  # searched well past the horizon: what was found is all there is within it
    except RequestError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError("invalid_recurrence", f"recurrence {rule!r}: {exc}") from None
    if not starts:
        raise RequestError("invalid_recurrence", f"recurrence {rule!r} yields no occurrence within the "
                           f"{BOOKING_HORIZON.days}-day booking horizon")
    if rr._count is not None and len(starts) < rr._count:
        raise RequestError("too_far_ahead", f"recurrence {rule!r} yields {len(starts)} of its COUNT={rr._count} "
                           f"occurrences within the {BOOKING_HORIZON.days}-day booking horizon")
    length = end - start
    return tuple(Occurrence(int(t.timestamp()), int((t + length).timestamp())) for t in starts)


def iso(ts: int, offset_min: int) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(minutes=offset_min))).isoformat()


def offset_minutes(t: datetime) -> int:
    off = t.utcoffset()
    return int(off.total_seconds() // 60) if off is not None else 0
