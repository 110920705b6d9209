"""When a phone call must end though nobody hung up: a pure decision, fed by the gateway's watchdog.

A call ends when its session is over (the booked window plus its margin has passed), cancelled,
or no longer includes the call's site; when the phone's RTP stopped arriving (a power cut loses
the BYE; `rtp_timeout_s`, 30 s by default); when its RFC 4028 session timer expired without a
refresh; and when our 2xx was never ACKed (RFC 3261 §13.3.1.4, decided by the transaction).
"""
from __future__ import annotations

from dataclasses import dataclass

from rooms.end_reason import EndReason

DEFAULT_RTP_TIMEOUT_S = 30.0
MIN_SE_S = 90  # RFC 4028 §5: the smallest session interval we accept (its recommended minimum)
MAX_SE_S = 3600
DB_RETRY_AFTER_S = 5  # Retry-After on a 500 the database caused


@dataclass(frozen=True)
class CallFacts:
    site: str
    phone_sends: bool  # the negotiated direction has the phone sending (not on hold with inactive/recvonly)
    last_rtp_at: float  # monotonic seconds: the last packet, or when the call was answered
    session_deadline: float | None  # monotonic seconds; None: no session timer negotiated


@dataclass(frozen=True)
class ConferenceFacts:
    active: bool
    sites: frozenset[str]
    windows: tuple[tuple[float, float], ...]  # epoch seconds, margin included


def end_reason(call: CallFacts, conf: ConferenceFacts | None, wall_now: float, mono_now: float,
               rtp_timeout_s: float = DEFAULT_RTP_TIMEOUT_S) -> EndReason | None:
    """Why the call must end now, or None to keep it."""
    if conf is None or not conf.active:
        return EndReason.SESSION_CANCELLED
    if call.site not in conf.sites:
        return EndReason.SITE_REMOVED
    if not any(s <= wall_now <= e for s, e in conf.windows):
        return EndReason.SESSION_ENDED
    if call.session_deadline is not None and mono_now > call.session_deadline:
        return EndReason.SESSION_TIMER
    if call.phone_sends and mono_now - call.last_rtp_at > rtp_timeout_s:
        return EndReason.RTP_TIMEOUT
    return None


def session_interval(session_expires: str | None, min_se: int = MIN_SE_S) -> int | None | str:
    """The interval to run for a request's Session-Expires value: seconds, None for no timer,
    or "too_small" (answer 422 with Min-SE). Bigger than MAX_SE_S is lowered to it (§9 allows it)."""
    if session_expires is None:
        return None
    value = session_expires.split(";", 1)[0].strip()
    if not value.isdigit() or len(value) > 9:
        raise ValueError(f"Session-Expires {session_expires[:30]!r} is not a number of seconds")
    seconds = int(value)
    if seconds < min_se:
        return "too_small"
    return min(seconds, MAX_SE_S)
