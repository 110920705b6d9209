"""RFC 4733 key presses and keypad commands, sans-io."""
from __future__ import annotations

import pytest

from sip_stub.dtmf import Command, DtmfReceiver, Keypad, parse_event


def event(key: int, duration: int, end: bool = False) -> bytes:
    return bytes([key, (0x80 if end else 0) | 10]) + duration.to_bytes(2, "big")


def test_one_press_is_one_digit_however_many_packets_and_repeated_ends():
    rx = DtmfReceiver()
    packets = [event(10, d) for d in (0, 160, 320)] + [event(10, 480, end=True)] * 3
    assert [rx.feed(1000, p) for p in packets] == ["*", None, None, None, None, None]
    assert rx.feed(2000, event(6, 0)) == "6"  # the next press: a new timestamp


def test_a_press_whose_first_packets_were_lost_still_counts():
    assert DtmfReceiver().feed(5000, event(11, 800, end=True)) == "#"


def test_a_sender_reusing_the_timestamp_is_seen_by_its_duration_starting_again():
    rx = DtmfReceiver()
    assert rx.feed(7000, event(1, 0)) == "1"
    assert rx.feed(7000, event(1, 640, end=True)) is None
    assert rx.feed(7000, event(1, 0)) == "1"


@pytest.mark.parametrize("payload", [b"", b"\x0a\x0a", bytes([16, 10, 0, 0]), bytes([255, 0, 0, 0])])
def test_malformed_or_non_key_events_are_refused(payload):
    with pytest.raises(ValueError):
        parse_event(payload)


def test_star_6_toggles_mute_and_other_keys_do_nothing():
    pad = Keypad()
    assert [pad.press(k) for k in "6*6"] == [None, None, Command.TOGGLE_MUTE]
    assert [pad.press(k) for k in "*16*#"] == [None, None, None, None, None]
