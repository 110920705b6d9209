"""Sites that speak and hear plain PCM (telephones through a gateway) inside a room.

A PcmLeg encodes what the phone says into Opus once, as the phone site's
audio source, so WebRTC legs receive it like any other site's; and it pulls
what the phone hears: a mix of every other site's audio, decoded once per
source by the room's mixer. This is the one place live audio is decoded,
and only while a phone is in the room.

The codecs run on the room's CodecThread, not the event loop: per phone, Opus encoding costs about
0.4 ms per 20 ms and decoding 0.1 ms per source per 20 ms (scripts/bench/pcm_codecs.py), time the
loop would otherwise not spend forwarding packets. PyAV releases the GIL inside the codecs (a spinning
thread kept ~96 % of its pace beside a decoding one), so the thread runs beside the loop, not against it.
Only the 20-ms sums (audioop, microseconds) stay on the loop.
"""
from __future__ import annotations

import asyncio
import audioop
import logging
import math
import queue
import threading
from collections import deque
from fractions import Fraction
from typing import Any, Callable

import av

from media.forwarding import EncodedFrame, Source

RATE = 8000
CHUNK = 320  # 20 ms of 8 kHz 16-bit mono
MAX_BUFFERED = 10  # chunks (200 ms) per source; older audio is dropped rather than delayed
MAX_PENDING = 500  # codec jobs waiting (~1 s of a busy room): beyond, audio is dropped (a click), never delayed
log = logging.getLogger("media.pcm")


class CodecThread:
    """A room's audio codecs, in order, on a thread of their own while a phone is in the room."""

    def __init__(self, name: str = "pcm codecs", max_pending: int = MAX_PENDING):
        self._jobs: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(max_pending)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._jobs.put_nowait((fn, args))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except Exception:  # one bad frame must not silence the room's phones
                log.exception("phone audio codec job failed")

    def stop(self) -> None:
        """No new jobs are run after those queued; the thread ends by itself (join() to wait for it)."""
        while True:
            try:
                self._jobs.put_nowait(None)
                return
            except queue.Full:  # make room for the stop: what it drops would have been late anyway
                try:
                    self._jobs.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def level_dbov(pcm: bytes) -> int:
    """RFC 6464 level (0 loud .. 127 silent) of 16-bit PCM."""
    rms = audioop.rms(pcm, 2)
    if rms <= 0:
        return 127
    return max(0, min(127, int(-20 * math.log10(rms / 32768))))


class SourceDecoder:
    """Decodes one room source's Opus into 20 ms chunks of 8 kHz mono PCM, on the room's codec thread.
    `chunks` is filled there and taken on the loop: deque append and popleft are atomic."""

    def __init__(self, codec: CodecThread) -> None:
        self.codec = codec
        self.decoder = av.CodecContext.create("opus", "r")
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self.pending = b""
        self.chunks: deque[bytes] = deque(maxlen=MAX_BUFFERED)

    def feed(self, frame: EncodedFrame) -> None:
        """A source's sink, on the loop: the frame's bytes are decoded on the codec thread."""
        self.codec.submit(self.decode, bytes(frame.data))

    def decode(self, data: bytes) -> None:
        try:
            for decoded in self.decoder.decode(av.Packet(data)):
                for out in self.resampler.resample(decoded):
                    self.pending += bytes(out.planes[0])[: out.samples * 2]
        except av.FFmpegError:
            return  # a damaged packet: skip it, the next one decodes
        while len(self.pending) >= CHUNK:
            self.chunks.append(self.pending[:CHUNK])
            self.pending = self.pending[CHUNK:]

    def take(self) -> bytes | None:
        return self.chunks.popleft() if self.chunks else None


class RoomMixer:
    """Per-room: decoders for every audio source, mixes on demand excluding the listener."""

    def __init__(self, name: str = "pcm codecs") -> None:
        self.decoders: dict[str, SourceDecoder] = {}
        self.codec = CodecThread(name)

    def attach(self, site: str, source: Source) -> None:
        if site in self.decoders:
            return
        dec = self.decoders[site] = SourceDecoder(self.codec)
        source.sinks.append(dec.feed)

    def detach(self, site: str, source: Source | None) -> None:
        dec = self.decoders.pop(site, None)
        if dec is not None and source is not None and dec.feed in source.sinks:
            source.sinks.remove(dec.feed)

    def mix_for(self, listener: str) -> bytes:
        out = b"\x00" * CHUNK
        for site, dec in self.decoders.items():
            chunk = dec.take()
            if chunk is not None and site != listener:  # never one's own voice
                out = audioop.add(out, chunk, 2)  # saturating sum
        return out


class PcmLeg:
    """A phone's audio in the room: PCM in -> Opus source; mix out -> PCM."""

    def __init__(self, site: str, source: Source, codec: CodecThread):
        self.site = site
        self.source = source
        self.codec = codec
        self._loop = asyncio.get_running_loop()  # where the encoded frames are handed to the source
        self.encoder = av.CodecContext.create("libopus", "w")
        self.encoder.sample_rate = 48000
        self.encoder.layout = "mono"
        self.encoder.format = "s16"
        self.encoder.bit_rate = 32000
        self.upsample = av.AudioResampler(format="s16", layout="mono", rate=48000)
        self.samples_in = 0
        self.frames_out = 0
        self.muted = False  # by the phone's keypad: the room hears silence, timing unchanged

    def push_pcm(self, pcm: bytes) -> int:
        """20 ms of 8 kHz PCM from the phone; returns its audio level (for speaker selection) at once,
        while the encoding runs on the codec thread."""
        if self.muted:
            pcm = bytes(len(pcm))
        self.codec.submit(self.encode, pcm)
        return level_dbov(pcm)

    def encode(self, pcm: bytes) -> None:  # on the codec thread
        frames: list[tuple[bytes, int]] = []
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.pts = self.samples_in
        frame.time_base = Fraction(1, RATE)
        self.samples_in += len(pcm) // 2
        for up in self.upsample.resample(frame):
            for packet in self.encoder.encode(up):
                if packet.pts is None:
                    continue
                self.frames_out += 1
                frames.append((bytes(packet), int(packet.pts)))
        if frames:
            try:
                self._loop.call_soon_threadsafe(self._forward, frames)
            except RuntimeError:  # the loop closed under a late job
                pass

    def _forward(self, frames: list[tuple[bytes, int]]) -> None:  # on the loop, in encoding order
        for data, pts in frames:
            self.source.on_frame("opus", 48000, data, pts)
