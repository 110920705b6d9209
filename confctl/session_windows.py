"""When a booked session admits legs and calls: its occurrences widened by the join margin."""
from __future__ import annotations

from datetime import datetime
from typing import Any


def windows(session: dict[str, Any], margin_s: int) -> tuple[tuple[float, float], ...]:
    """Each occurrence as epoch seconds, opened `margin_s` early and closed `margin_s` late."""
    return tuple((datetime.fromisoformat(o["start"]).timestamp() - margin_s,
                  datetime.fromisoformat(o["end"]).timestamp() + margin_s) for o in session["occurrences"])


def is_live(session: dict[str, Any], now: float, margin_s: int) -> bool:
    return any(start <= now <= end for start, end in windows(session, margin_s))


def is_over(session: dict[str, Any], now: float) -> bool:
    return now > max(end for _, end in windows(session, 0))
