"""Synthetic HD sources for the capacity harness: encoded once per profile, replayed on many legs.

A clip is a moving test pattern with the frame number and its place in the send schedule
burned into the picture, encoded once with PyAV at the profile's size and bitrate (VP8, or
H.264 for phones and hardware endpoints; a key frame every KEY_EVERY_S) plus Opus at a pinned
64 kbit/s CBR (aiortc's own Opus gives ~128 kbit/s on a tone, twice the model's audio term).
Clips are cached on disk (var/cache/synthetic), so a second run starts at once.

`ReplayVideo` / `ReplayAudio` are aiortc tracks that hand the encoded frames to the sender at
real-time pace with continuous timestamps, looping on a key frame without a glitch (aiortc's
`MediaPlayer(decode=False, loop=True)` restarts timestamps and floods at the loop point), and
answer a key-frame request by moving to the clip's nearest key frame ahead.

A receiver measures freezes and delay without decoding: every frame of a clip is unique, so
`ClipIndex` maps a received frame's bytes to its place in the clip, and the sender's schedule
(frame k of the stream goes out at start + k / fps; one machine, one clock) gives its send time.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import struct
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from media.forwarding import EncodedFrame

log = logging.getLogger("media.synthetic")
KEY_EVERY_S = 2.5
CLIP_S = 5.0  # two GOPs: the loop point is a key frame
AUDIO_KBPS = 64
VIDEO_CLOCK = 90000
DEFAULT_CACHE = Path("var/cache/synthetic")


@dataclass(frozen=True)
class Clip:
    codec: str  # "VP8", "H264" or "opus"
    frames: tuple[tuple[bytes, bool], ...]  # (encoded frame, is key frame)
    fps: float  # frames a second (50 for 20 ms Opus frames)
    kbps: int
    width: int = 0
    height: int = 0

    @property
    def keyframes(self) -> tuple[int, ...]:
        return tuple(i for i, (_, key) in enumerate(self.frames) if key)

    def measured_kbps(self) -> float:
        return 8 * sum(len(f) for f, _ in self.frames) / (len(self.frames) / self.fps) / 1000


def _pattern(width: int, height: int, i: int, fps: int) -> np.ndarray:
    """Luma of frame i: a gradient, a bar moving across, and the frame number as a binary strip
    (16 cells) with the seconds into the clip as a bar at the bottom: readable by eye, and every
    frame different."""
    y = np.tile(np.linspace(40, 200, width, dtype=np.uint8), (height, 1))
    x = (i * 8) % max(1, width - 64)
    y[:, x:x + 64] = 235
    cell = max(4, width // 32)
    for bit in range(16):
        y[cell:2 * cell, (bit * 2 + 1) * cell:(bit * 2 + 2) * cell] = 235 if (i >> bit) & 1 else 16
    y[height - cell:, : int(width * (i % fps) / fps)] = 128
    noise = np.random.default_rng(i).integers(0, 24, size=(height // 8, width // 8), dtype=np.uint8)
    y[: height // 8 * 8, : width // 8 * 8] += np.kron(noise, np.ones((8, 8), dtype=np.uint8))  # texture to code
    return y


def _encode_video(codec: str, width: int, height: int, kbps: int, fps: int,
                  seconds: float = CLIP_S) -> list[tuple[bytes, bool]]:
    name = "libvpx" if codec == "VP8" else "libx264"
    enc = av.CodecContext.create(name, "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.bit_rate, enc.time_base, enc.framerate = kbps * 1000, Fraction(1, fps), Fraction(fps, 1)
    gop = int(KEY_EVERY_S * fps)
    enc.gop_size = gop
    if codec == "VP8":
        enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "keyint_min": str(gop)}
    else:  # Constrained Baseline, as phones and hardware endpoints decode it
        enc.profile = "Baseline"
        enc.options = {"preset": "veryfast", "tune": "zerolatency", "keyint_min": str(gop), "sc_threshold": "0",
                       "bf": "0", "repeat-headers": "1"}
    chroma = np.full((height // 2, width // 2), 128, dtype=np.uint8)
    out: list[tuple[bytes, bool]] = []
    for i in range(int(seconds * fps)):
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.planes[0].update(_pattern(width, height, i, fps).tobytes())
        frame.planes[1].update(chroma.tobytes())
        frame.planes[2].update(chroma.tobytes())
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i % gop == 0 else av.video.frame.PictureType.NONE
        out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    return out


def _encode_audio(kbps: int) -> list[tuple[bytes, bool]]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    enc.bit_rate = kbps * 1000
    enc.options = {"vbr": "off", "frame_duration": "20", "application": "voip"}
    out: list[tuple[bytes, bool]] = []
    n = int(CLIP_S * 50)
    t = np.arange(960)
    for i in range(n):
        # a tone that steps in pitch every half second, with a little noise: speech-like enough to code
        tone = 6000 * np.sin(2 * np.pi * (300 + 50 * ((i // 25) % 6)) * (t + i * 960) / 48000)
        pcm = (tone + np.random.default_rng(i).normal(0, 300, 960)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(pcm, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        out += [(bytes(p), True) for p in enc.encode(frame)]
    out += [(bytes(p), True) for p in enc.encode(None)]
    return out[:n]


def _cache_path(cache: Path, key: str) -> Path:
    return cache / f"{key}.clip"


def _save(path: Path, clip: Clip) -> None:
    """A JSON header line, then each frame as (4-byte length, key flag, bytes): exactly what was
    encoded (a container would rewrite H.264's Annex B start codes into lengths)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    header = {"codec": clip.codec, "kbps": clip.kbps, "fps": clip.fps, "width": clip.width, "height": clip.height,
              "frames": len(clip.frames)}
    with tmp.open("wb") as f:
        f.write(json.dumps(header).encode() + b"\n")
        for data, key in clip.frames:
            f.write(struct.pack(">IB", len(data), key) + data)
    tmp.replace(path)


def _load(path: Path) -> Clip | None:
    try:
        with path.open("rb") as f:
            h = json.loads(f.readline())
            frames = []
            for _ in range(int(h["frames"])):
                size, key = struct.unpack(">IB", f.read(5))
                data = f.read(size)
                if len(data) != size:
                    return None  # cut short: encode again
                frames.append((data, bool(key)))
        return Clip(str(h["codec"]), tuple(frames), float(h["fps"]), int(h["kbps"]), int(h["width"]), int(h["height"]))
    except (OSError, ValueError, KeyError, struct.error):
        return None


def video_clip(width: int, height: int, kbps: int, codec: str = "VP8", fps: int = 30,
               cache: Path | None = DEFAULT_CACHE, seconds: float = CLIP_S) -> Clip:
    """The profile's clip: from the cache, or encoded now (a few seconds) and cached."""
    if codec not in ("VP8", "H264"):
        raise ValueError(f"codec {codec!r}: VP8 or H264")
    key = f"{codec.lower()}-{width}x{height}-{kbps}k-{fps}fps-{seconds:g}s-v1"
    path = _cache_path(cache, key) if cache is not None else None
    if path is not None and path.exists() and (clip := _load(path)) is not None:
        return clip
    started = time.monotonic()
    clip = Clip(codec, tuple(_encode_video(codec, width, height, kbps, fps, seconds)), fps, kbps, width, height)
    log.info("encoded %s in %.1f s (%.0f kbit/s)", key, time.monotonic() - started, clip.measured_kbps())
    if path is not None:
        _save(path, clip)
    return clip


def audio_clip(kbps: int = AUDIO_KBPS, cache: Path | None = DEFAULT_CACHE) -> Clip:
    key = f"opus-{kbps}k-v1"
    path = _cache_path(cache, key) if cache is not None else None
    if path is not None and path.exists() and (clip := _load(path)) is not None:
        return clip
    clip = Clip("opus", tuple(_encode_audio(kbps)), 50.0, kbps)
    if path is not None:
        _save(path, clip)
    return clip


class ClipIndex:
    """A received frame's place in its clip, from its bytes (no decoding)."""

    def __init__(self, clip: Clip):
        self.fps = clip.fps
        self.length = len(clip.frames)
        self._by_digest = {hashlib.blake2b(data, digest_size=8).digest(): i for i, (data, _) in enumerate(clip.frames)}

    def position(self, data: bytes) -> int | None:
        return self._by_digest.get(hashlib.blake2b(data, digest_size=8).digest())

    def send_time(self, position: int, start: float, received: float) -> float:
        """When the sender (started at `start`, one frame every 1/fps) sent the frame at `position`
        of the loop nearest to `received`: the schedule burned into the stream."""
        loop_s = self.length / self.fps
        base = start + position / self.fps
        k = round((received - base) / loop_s)
        return base + max(0, k) * loop_s


class _Replay:
    """Pre-encoded frames at real-time pace; timestamps continue across the loop point."""

    def __init__(self, clip: Clip, clock: int, start_at: float | None = None):
        self.clip, self.clock = clip, clock
        self.sent = 0  # frames handed to the sender (the stream's frame number)
        self.pos = 0  # place in the clip
        self.start = start_at
        self.keyframe_requests = 0
        self._keys = clip.keyframes
        self.on_segment: Callable[[float, int], None] | None = None  # (when, clip position) a run of the schedule starts
        self._jumped = True

    def request_keyframe(self) -> None:
        """Jump to the nearest key frame ahead: the receiver gets a picture soonest, the schedule holds."""
        self.keyframe_requests += 1
        if self.clip.frames[self.pos % len(self.clip.frames)][1]:
            return
        ahead = [k for k in self._keys if k > self.pos]
        self.pos = ahead[0] if ahead else 0
        self._jumped = True

    async def next(self) -> EncodedFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sent / self.clip.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._jumped and self.on_segment is not None:
            self.on_segment(due, self.pos)
        self._jumped = False
        data, key = self.clip.frames[self.pos]
        ts = round(self.sent * self.clock / self.clip.fps)
        self.sent += 1
        self.pos = (self.pos + 1) % len(self.clip.frames)
        return EncodedFrame(data, ts, Fraction(1, self.clock), key)

    def schedule_start(self) -> float | None:
        """When frame 0 went out, for receivers' delay arithmetic (position p of the clip goes out
        at start + (loop * len + p) / fps as long as no key-frame request moved it)."""
        return self.start


class ReplayVideo(MediaStreamTrack):
    """A synthetic camera: the clip's encoded frames, sent as they are (never re-encoded)."""

    kind = "video"

    def __init__(self, clip: Clip, start_at: float | None = None):
        super().__init__()
        self.replay = _Replay(clip, VIDEO_CLOCK, start_at)

    def request_keyframe(self) -> None:
        self.replay.request_keyframe()

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        return await self.replay.next()


class ReplayAudio(MediaStreamTrack):
    """A synthetic microphone: pre-encoded 20 ms Opus frames at a pinned bitrate."""

    kind = "audio"

    def __init__(self, clip: Clip, start_at: float | None = None):
        super().__init__()
        self.replay = _Replay(clip, 48000, start_at)

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        return await self.replay.next()
