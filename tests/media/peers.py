"""Real aiortc peers standing in for sites: synthetic camera and microphone, program counters."""
from __future__ import annotations

import asyncio
import inspect
import audioop
import math
import time
from array import array
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame


class PatternTrack(VideoStreamTrack):
    """A small moving pattern, cheap to encode, so several peers fit on two cores."""

    def __init__(self, shade: int, size: tuple[int, int] = (320, 240)):
        super().__init__()
        self.shade = shade
        self.w, self.h = size

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        x = (pts // 3000) % (self.w - 8)
        row = bytes([self.shade]) * x + b"\xff" * 8 + bytes([self.shade]) * (self.w - 8 - x)
        frame = VideoFrame(self.w, self.h, "yuv420p")
        frame.planes[0].update(row * self.h)  # luma: a bar moving across a flat field
        frame.planes[1].update(b"\x80" * (frame.planes[1].buffer_size))
        frame.planes[2].update(b"\x80" * (frame.planes[2].buffer_size))
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A site whose microphone hears someone talking: a 440 Hz tone at about -10 dBov (`talking`
    may be switched off and on: the site falls silent and speaks again)."""

    talking = True

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # silence with the right timing
        if not self.talking:
            return frame
        n = frame.samples
        start = frame.pts
        pcm = array("h", (int(10000 * math.sin(2 * math.pi * 440 * (start + i) / frame.sample_rate)) for i in range(n)))
        frame.planes[0].update(pcm.tobytes())
        return frame


class SitePeer:
    def __init__(self, shade: int, talking: bool = False):
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.microphone = ToneTrack()
        self.microphone.talking = talking
        self.pc.addTransceiver(self.microphone, direction="sendrecv")
        self.pc.addTransceiver(PatternTrack(shade), direction="sendrecv")
        self.pc.addTransceiver("video", direction="recvonly")
        self.frames: dict[int, int] = {}  # index of received video track -> frames decoded
        self.audio_energy = 0.0  # summed RMS of the audio this site hears
        self._tasks: list[asyncio.Task[Any]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                idx = len(self.frames)
                self.frames[idx] = 0
                self._tasks.append(asyncio.ensure_future(self._count(idx, track)))
            else:
                self._tasks.append(asyncio.ensure_future(self._listen(track)))

    async def _count(self, idx: int, track: Any) -> None:
        try:
            while True:
                await track.recv()
                self.frames[idx] += 1
        except MediaStreamError:
            pass

    async def _listen(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                self.audio_energy += audioop.rms(bytes(frame.planes[0]), 2)
        except MediaStreamError:
            pass

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def until(predicate, timeout: float = 20.0, what: str = "condition"):
    """Poll a condition with a deadline (tests never sleep to wait for a state); returns its truthy value.

    The predicate may be a coroutine function (e.g. an HTTP read of live figures)."""
    deadline = time.monotonic() + timeout
    while not (value := await result if inspect.isawaitable(result := predicate()) else result):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return value
