"""Keys pressed on a phone: RFC 4733 telephone-events, and the keypad commands they make. Sans-io.

A key press is one event: every packet of it carries the same RTP timestamp
(the event's start), its duration only grows, and the last is sent three
times with the E bit. So a digit is taken from the first packet of a new
press: a new timestamp, or the same one with a shorter duration (a sender
that restarts its clock, as sipp's play_dtmf does). One lost packet, or all
three end packets lost, still leaves the digit.
"""
from __future__ import annotations

from dataclasses import dataclass

EVENTS = "0123456789*#ABCD"  # RFC 4733 §3.2: events 0-15


@dataclass(frozen=True)
class ToneEvent:
    digit: str
    end: bool
    volume: int  # -dBm0
    duration: int  # timestamp units so far


def parse_event(payload: bytes) -> ToneEvent:
    if len(payload) < 4:
        raise ValueError(f"a telephone-event payload is 4 bytes, got {len(payload)}")
    event = payload[0]
    if event >= len(EVENTS):
        raise ValueError(f"event {event} is not a DTMF key")
    return ToneEvent(EVENTS[event], bool(payload[1] & 0x80), payload[1] & 0x3F, int.from_bytes(payload[2:4], "big"))


class DtmfReceiver:
    """Telephone-event packets in, one digit per key press out."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (timestamp, duration) of the newest packet

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        event = parse_event(payload)
        last, self._last = self._last, (timestamp, event.duration)
        if last is not None and timestamp == last[0] and event.duration >= last[1]:
            return None  # the same press going on (or its end packet repeated)
        return event.digit


class Command:
    TOGGLE_MUTE = "toggle_mute"


# As on most conference bridges: '*' starts a command, the next key names it.
COMMANDS = {"6": Command.TOGGLE_MUTE}


class Keypad:
    def __init__(self) -> None:
        self._star = False

    def press(self, digit: str) -> str | None:
        if digit == "*":
            self._star = True
            return None
        command = COMMANDS.get(digit) if self._star else None
        self._star = False
        return command
