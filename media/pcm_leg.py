"""Sites that speak and hear plain PCM (telephones through a gateway) inside a room.

A PcmLeg encodes what the phone says into Opus once, as the phone site's
audio source, so WebRTC legs receive it like any other site's; and it pulls
what the phone hears: a mix of every other site's audio, decoded once per
source by the room's mixer. This is the one place live audio is decoded,
and only while a phone is in the room.
"""
from __future__ import annotations

import audioop
import math
from collections import deque
from fractions import Fraction

import av

from media.forwarding import EncodedFrame, Source

RATE = 8000
CHUNK = 320  # 20 ms of 8 kHz 16-bit mono
MAX_BUFFERED = 10  # chunks (200 ms) per source; older audio is dropped rather than delayed


def level_dbov(pcm: bytes) -> int:
    """RFC 6464 level (0 loud .. 127 silent) of 16-bit PCM."""
    rms = audioop.rms(pcm, 2)
    if rms <= 0:
        return 127
    return max(0, min(127, int(-20 * math.log10(rms / 32768))))


class SourceDecoder:
    """Decodes one room source's Opus into 20 ms chunks of 8 kHz mono PCM."""

    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("opus", "r")
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self.pending = b""
        self.chunks: deque[bytes] = deque(maxlen=MAX_BUFFERED)

    def feed(self, frame: EncodedFrame) -> None:
        try:
            for decoded in self.decoder.decode(av.Packet(frame.data)):
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

    def __init__(self) -> None:
        self.decoders: dict[str, SourceDecoder] = {}

    def attach(self, site: str, source: Source) -> None:
        if site in self.decoders:
            return
        dec = self.decoders[site] = SourceDecoder()
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

    def __init__(self, site: str, source: Source):
        self.site = site
        self.source = source
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
        """20 ms of 8 kHz PCM from the phone; returns its audio level (for speaker selection)."""
        if self.muted:
            pcm = bytes(len(pcm))
        return self._encode(pcm)

    def _encode(self, pcm: bytes) -> int:
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
                self.source.on_frame("opus", 48000, bytes(packet), int(packet.pts))
        return level_dbov(pcm)
