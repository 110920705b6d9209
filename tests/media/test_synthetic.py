"""Synthetic sources: encoded once and cached, replayed over real aiortc peers, looping without a glitch."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

import media.synthetic as synthetic
from media.aiortc_hooks import on_keyframe_request, tap_receiver
from media.synthetic import ClipIndex, ReplayAudio, ReplayVideo, audio_clip, video_clip
from tests.media.peers import until


def test_a_clip_is_encoded_once_and_read_back_from_the_cache(tmp_path, monkeypatch):
    clip = video_clip(320, 180, 300, "VP8", cache=tmp_path, seconds=3)
    assert clip.keyframes == (0, 75)  # a key frame every 2.5 s, the loop point among them
    assert 250 < clip.measured_kbps() < 360  # the profile's bitrate
    h264 = video_clip(320, 180, 300, "H264", cache=tmp_path, seconds=3)
    monkeypatch.setattr(synthetic, "_encode_video", lambda *a, **k: pytest.fail("encoded a second time"))
    again = video_clip(320, 180, 300, "VP8", cache=tmp_path, seconds=3)
    assert again == clip  # the same frames, key flags, rate and size, from disk
    assert video_clip(320, 180, 300, "H264", cache=tmp_path, seconds=3) == h264
    assert h264.frames[0][1] and h264.frames[0][0].startswith(b"\x00\x00\x00\x01")  # Annex B, starts on an IDR
    opus = audio_clip(cache=tmp_path)
    assert 60 < opus.measured_kbps() < 68 and opus.fps == 50  # pinned CBR 64 kbit/s, 20 ms frames


def test_every_frame_of_a_clip_is_known_by_its_bytes_and_its_send_time_follows_the_schedule():
    clip = video_clip(160, 90, 200, "VP8", cache=None, seconds=1)
    index = ClipIndex(clip)
    assert [index.position(f) for f, _ in clip.frames] == list(range(len(clip.frames)))
    assert index.position(b"not a frame") is None
    # frame 10 of the third loop (each loop 1 s), received 80 ms after it was due
    assert index.send_time(10, start=100.0, received=102.0 + 10 / 30 + 0.08) == pytest.approx(102.0 + 10 / 30)


async def _pair(track: Any) -> tuple[RTCPeerConnection, RTCPeerConnection, list[tuple[float, int, bytes]]]:
    send = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    recv = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got: list[tuple[float, int, bytes]] = []

    @recv.on("track")
    def on_track(t: Any) -> None:
        receiver = next(x.receiver for x in recv.getTransceivers() if x.receiver.track is t)
        tap_receiver(receiver, lambda codec, frame: got.append((time.monotonic(), frame.timestamp, frame.data)))
    sender = send.addTrack(track)
    if track.kind == "video":
        on_keyframe_request(sender, track.request_keyframe)
    await send.setLocalDescription(await send.createOffer())
    await recv.setRemoteDescription(send.localDescription)
    await recv.setLocalDescription(await recv.createAnswer())
    await send.setRemoteDescription(recv.localDescription)
    return send, recv, got


async def test_replay_loops_at_real_time_pace_with_continuous_timestamps():
    clip = video_clip(160, 90, 200, "VP8", cache=None, seconds=1)  # loops every second
    track = ReplayVideo(clip)
    send, recv, got = await _pair(track)
    index = ClipIndex(clip)
    try:
        await until(lambda: len(got) >= 75, timeout=20, what="2.5 s of replayed frames")
        stamps = [ts for _, ts, _ in got]
        steps = {b - a for a, b in zip(stamps, stamps[1:])}
        assert steps == {3000}, steps  # 90 kHz / 30 fps, across both loop points: no restart, no jump
        positions = [index.position(data) for _, _, data in got]
        assert positions[:75] == [i % 30 for i in range(positions[0], positions[0] + 75)]
        arrivals = [t for t, _, _ in got]
        span = arrivals[74] - arrivals[0]
        assert 74 / 30 * 0.8 < span < 74 / 30 * 1.25, span  # real-time pace: no flood at the loop point
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:75])]
        assert max(gaps) < 0.2  # no freeze at the loop point
    finally:
        await send.close()
        await recv.close()


async def test_a_keyframe_request_is_answered_from_the_nearest_key_frame_ahead():
    clip = video_clip(160, 90, 200, "VP8", cache=None, seconds=3)  # key frames at 0 and 75
    track = ReplayVideo(clip)
    track.replay.pos = 10
    track.request_keyframe()
    assert track.replay.pos == 75 and clip.frames[75][1]
    track.replay.pos = 80
    track.request_keyframe()
    assert track.replay.pos == 0  # the loop point is the next key frame
    track.request_keyframe()
    assert track.replay.pos == 0  # already on a key frame: nothing skipped


async def test_replayed_opus_is_sent_as_encoded():
    clip = audio_clip(cache=None)
    send, recv, got = await _pair(ReplayAudio(clip))
    try:
        await until(lambda: len(got) >= 50, timeout=20, what="a second of replayed Opus")
        sent = {data for data, _ in clip.frames}
        assert all(data in sent for _, _, data in got[:50])  # never re-encoded
    finally:
        await send.close()
        await recv.close()
        await asyncio.sleep(0)
