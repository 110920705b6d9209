"""The policer's decision (media/policing.py): whole frames dropped from a source over its reservation."""
from __future__ import annotations

import pytest

from media.grants import Grant, InvalidGrant, sign_grant, verify_grant
from media.policing import Policer


def _run(policer: Policer, kbps: float, seconds: float, fps: int = 30, packets_per_frame: int = 4,
         start: float = 0.0, key_every: int = 1) -> tuple[int, int, list[list[bool]]]:
    """Feed `seconds` of a sender at `kbps`: (bytes in, bytes admitted, per frame the packets' verdicts)."""
    frame_bytes = kbps * 1000 / 8 / fps
    size = int(frame_bytes / packets_per_frame)
    sent = admitted = 0
    frames: list[list[bool]] = []
    for i in range(int(seconds * fps)):
        now = start + i / fps
        key = i % key_every == 0
        verdicts = [policer.admit(now, size, j == 0, key) for j in range(packets_per_frame)]
        frames.append(verdicts)
        sent += size * packets_per_frame
        admitted += size * sum(verdicts)
    return sent, admitted, frames


def test_a_sender_within_its_reservation_loses_nothing() -> None:
    policer = Policer(2000)
    sent, admitted, _ = _run(policer, 2000, 20)
    assert admitted == sent and policer.policed_frames == 0


def test_a_burst_shorter_than_the_bucket_passes() -> None:
    policer = Policer(2000)
    _run(policer, 1000, 5)  # below the reservation: the bucket fills
    sent, admitted, _ = _run(policer, 4000, 1.5, start=5)  # twice the rate for 1.5 s
    assert admitted == sent and policer.policed_frames == 0


def test_a_sender_far_over_its_reservation_is_held_to_it_plus_tolerance() -> None:
    policer = Policer(2000)
    sent, admitted, frames = _run(policer, 4000, 30)
    # after the first burst is spent, what passes over the last 20 s is the reservation + 20 %
    tail = frames[10 * 30:]
    size = int(4000 * 1000 / 8 / 30 / 4)
    tail_kbps = sum(size * sum(f) for f in tail) * 8 / 20 / 1000
    assert 2000 <= tail_kbps <= 2000 * 1.2 * 1.02
    assert policer.policed_frames > 0 and policer.policed_bytes == sent - admitted
    assert any(not any(f) for f in frames)


def test_frames_are_dropped_whole_never_in_part() -> None:
    policer = Policer(500)
    _, _, frames = _run(policer, 3000, 10, packets_per_frame=7)
    assert all(all(f) or not any(f) for f in frames)  # each frame's packets share one verdict
    assert sum(1 for f in frames if not any(f)) == policer.policed_frames > 0


def test_it_stops_dropping_once_the_sender_comes_down() -> None:
    policer = Policer(2000)
    _run(policer, 5000, 10)
    assert policer.policed_frames > 0
    before = policer.policed_frames
    _, _, frames = _run(policer, 1500, 10, start=10)
    assert all(all(f) for f in frames[2 * 30:])  # the debt is paid within a couple of seconds
    assert policer.policed_frames - before < 60


def test_a_reservation_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Policer(0)


def test_after_a_drop_video_resumes_only_at_a_key_frame() -> None:
    """A dropped frame breaks the chain of references: the frames after it until a key frame would
    decode wrongly, so they are dropped too, and the source is asked for a key frame."""
    policer = Policer(1000)
    _, _, frames = _run(policer, 3000, 10, key_every=15)
    admitted = [i for i, f in enumerate(frames) if all(f)]
    dropped = {i for i, f in enumerate(frames) if not any(f)}
    assert dropped and admitted
    for i in admitted:  # every admitted frame follows an admitted one, or is a key frame
        assert i == 0 or i - 1 not in dropped or i % 15 == 0
    asked = Policer(1000)
    _run(asked, 3000, 10, key_every=1_000_000)
    assert asked.wants_keyframe


def test_a_grant_carries_the_reserved_video_rate_and_a_bad_one_is_refused() -> None:
    key = b"key"
    grant = verify_grant(key, sign_grant(key, Grant("ses_1", "cc", "jl", False, False, 1e12, video_kbps=2000)), 0)
    assert grant.video_kbps == 2000
    assert verify_grant(key, sign_grant(key, Grant("ses_1", "cc", "jl", False, False, 1e12)), 0).video_kbps is None
    for bad in (0, -5, "2000"):
        with pytest.raises(InvalidGrant, match="malformed"):
            verify_grant(key, sign_grant(key, Grant("ses_1", "cc", "jl", False, False, 1e12, video_kbps=bad)), 0)  # type: ignore[arg-type]
