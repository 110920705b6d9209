"""Forwarding one source to many subscribers: RTP packets to legs, encoded frames to the rest.

A `Source` is one incoming track (a site's camera or microphone). A
`ForwardedTrack` is one outgoing stream; it can be switched to another source
(program change) and keeps its numbering and timestamps continuous across the
switch so receivers' jitter buffers are not confused. Once its aiortc sender
has started with VP8, H.264 or Opus, it forwards each packet as it arrives
(media/rtp_output.py); before that, and on trunks, aiortc reads encoded frames
from its bounded queue and packetizes them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable, Literal, TypedDict

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.aiortc_hooks import (DirectSend, answer_nacks, answer_nacks_natively, extension_ids, native_route,
                                on_send_parameters)
from media.h264 import h264_keyframe
from media.policing import Policer
from media.rtp_output import Negotiated, RtpOutput, abs_send_time, vp8_descriptor

if TYPE_CHECKING:
    from media.native import Output as NativeOutput

log = logging.getLogger("media.forwarding")

# The C is built when the package is installed (pyproject.toml's ext-modules). Where it was not (no
# compiler, a broken build), the node forwards through its Python specification, and says so.
try:
    from media import native as _native
except ImportError as exc:
    _native = None
    _NATIVE_MISSING: str | None = f"media.native cannot be imported ({type(exc).__name__}: {exc})"
else:
    _NATIVE_MISSING = None


class _NoOutput:
    """Without media.native: nothing is a native Output."""


_NATIVE_OUTPUT: type = _native.Output if _native is not None else _NoOutput
_fan_out = _native.fan_out if _native is not None else None  # called only with native Outputs

# these two are media.native's too (tests/media/test_native_constants.py)
KEYFRAME_RETRY_S = 0.5  # ask again while no key frame has come
FREEZE_S = 0.2  # a gap between forwarded video frames longer than this is a freeze a viewer sees
VIDEO_QUEUE = 60  # ~2 s at 30 fps: a receiver further behind is slow, not late
AUDIO_QUEUE = 50  # 1 s of 20 ms packets
# Legs forward at the RTP level (media/rtp_output.py); CONFCTL_FRAME_FORWARDING=1 keeps aiortc's
# frame path, for the benchmark's baseline.
RTP_FORWARDING = os.environ.get("CONFCTL_FRAME_FORWARDING", "") != "1"
# Each packet is received, rewritten, protected and sent in C (media/native.h); CONFCTL_PYTHON_RTP=1
# forwards through the Python specification (aiortc_hooks.ForwardOnly, rtp_output.py) instead, for the
# benchmark.
NATIVE = RTP_FORWARDING and os.environ.get("CONFCTL_PYTHON_RTP", "") != "1" and _native is not None
_announced = False  # the missing C is logged once per process


class ForwardingPath(TypedDict, total=False):
    """How this process forwards media, for /api/health: "native" (the C), "python" (its specification)
    or "frames" (aiortc's packetizer); `reason` when it is not the C."""
    path: Literal["native", "python", "frames"]
    reason: str


def forwarding_path() -> ForwardingPath:
    """How this process forwards media; the first call logs it when the C could not be loaded."""
    global _announced
    if not RTP_FORWARDING:
        return {"path": "frames", "reason": "CONFCTL_FRAME_FORWARDING=1"}
    if NATIVE:
        return {"path": "native"}
    if _NATIVE_MISSING is None:
        return {"path": "python", "reason": "CONFCTL_PYTHON_RTP=1"}
    if not _announced:
        _announced = True
        log.warning("%s: forwarding through the Python path (media/rtp_output.py), which costs more CPU per "
                    "packet; reinstall with gcc and the Python headers to build it", _NATIVE_MISSING)
    return {"path": "python", "reason": _NATIVE_MISSING}


class EncodedFrame:
    """What aiortc's encoders `pack()`: bytes, pts and time_base (no av.Packet copy per subscriber)."""

    __slots__ = ("data", "pts", "time_base", "keyframe")

    def __init__(self, data: bytes, pts: int, time_base: Fraction, keyframe: bool):
        self.data, self.pts, self.time_base, self.keyframe = data, pts, time_base, keyframe

    def __bytes__(self) -> bytes:
        return self.data


def is_keyframe(codec_name: str, data: bytes) -> bool:
    if codec_name == "VP8":
        return bool(data) and (data[0] & 0x01) == 0  # RFC 6386 §9.1: P bit clear on key frames
    if codec_name == "H264":
        i = 0
        while (i := data.find(b"\x00\x00\x01", i)) != -1 and i + 3 < len(data):
            if data[i + 3] & 0x1F in (5, 7):  # IDR slice or SPS
                return True
            i += 3
        return False
    return True  # audio: every frame stands alone


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 §9.1), without decoding."""
    if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
        return None
    return (int.from_bytes(data[6:8], "little") & 0x3FFF, int.from_bytes(data[8:10], "little") & 0x3FFF)


class Source:
    """One incoming encoded track, fanned out to its subscribers: as RTP packets to legs forwarding
    at the RTP level (media/rtp_output.py), as frames to the rest (recorders, phones, trunks)."""

    def __init__(self, kind: str, request_keyframe: Callable[[], None]):
        forwarding_path()  # the first source says in the log if the C is missing
        self.kind = kind
        self.request_keyframe = request_keyframe
        self.subscribers: set[ForwardedTrack] = set()
        self.sinks: list[Callable[[EncodedFrame], None]] = []  # recorders
        self._frames = 0
        self._bytes = 0
        self.resolution: tuple[int, int] | None = None
        self.packet_fed = False  # its receiver hands us packets (else an audio frame is one packet)
        self._seq = 0
        self._native: tuple[NativeOutput, ...] = ()  # subscribers' C outputs, rebuilt when they change
        self._frame_readers = False  # a subscriber's aiortc sender reads frames (not at the RTP level)
        # media/native_input.c reads this per packet: the outputs when every subscriber has a C one
        # (then it forwards the packet itself), else None (it hands the packet to on_packet)
        self._fast: tuple[NativeOutput, ...] | None = ()
        self.native_in: list[Any] = []  # media.native.Stream objects counting this source's packets in C
        # Held to its reserved rate (media/policing.py): its packets then come through on_packet (the C
        # input forwards only unpoliced sources), and what is dropped is cut out of the numbering.
        self.policer: Policer | None = None
        self.on_capped: Callable[[], None] | None = None  # a frame was dropped: ask the sender for less
        self._cut = 0  # packets dropped so far: subtracted from later sequence numbers
        self._frame_ts: int | None = None  # the timestamp of the frame in progress
        self._capped_at = -KEYFRAME_RETRY_S  # when the sender was last asked for less / for a key frame

    def police(self, policer: Policer | None) -> None:
        self.policer = policer
        self.outputs_changed()

    @property
    def policed_frames(self) -> int:
        return self.policer.policed_frames if self.policer is not None else 0

    @property
    def frames(self) -> int:
        return self._frames + sum(st.frames for st in self.native_in)

    @property
    def bytes(self) -> int:
        return self._bytes + sum(st.bytes for st in self.native_in)

    def subscribe(self, track: ForwardedTrack) -> None:
        self.subscribers.add(track)
        self.outputs_changed()

    def unsubscribe(self, track: ForwardedTrack) -> None:
        self.subscribers.discard(track)
        self.outputs_changed()

    def outputs_changed(self) -> None:
        """A subscriber came, went, its output appeared (its sender started) or aiortc started reading
        frames from it. A subscriber whose sender never started (a send-only site) reads nothing and
        does not keep packets from the C path."""
        self._native = tuple(sub.rtp for sub in self.subscribers if isinstance(sub.rtp, _NATIVE_OUTPUT))
        self._frame_readers = any(sub.rtp is None and sub.recv_calls for sub in self.subscribers)
        idle = sum(1 for sub in self.subscribers if sub.rtp is None and not sub.recv_calls)
        self._fast = (self._native if len(self._native) + idle == len(self.subscribers) and self.policer is None
                      else None)

    def on_keyframe_header(self, header: bytes) -> None:
        """The first bytes of a key frame that media/native_input.c counted: its size."""
        self.resolution = vp8_size(header) or self.resolution

    def on_packet(self, codec_name: str, seq: int, ts: int, marker: bool, payload: bytes, framed: bool,
                  level: int | None = None) -> None:
        """An RTP packet as it arrived. `framed`: aiortc also reassembles this source's frames (and
        on_frame counts them); otherwise nobody needs frames and they are counted here. `level`: its
        RFC 6464 audio level, passed on to the receivers."""
        self.packet_fed = True
        desc = None
        if self.kind == "video" and codec_name == "VP8":
            start, pic_at, key = vp8_descriptor(payload)  # once, for every output
            desc = (pic_at, key)
            if not framed:
                self._bytes += len(payload) - start
                if marker:
                    self._frames += 1
                if key:
                    self.resolution = vp8_size(payload[start:start + 10]) or self.resolution
        elif self.kind == "video" and codec_name == "H264":
            desc = (None, h264_keyframe(payload))  # once, for every output: no picture ID to rewrite
            if not framed:
                self._bytes += len(payload)
                if marker:
                    self._frames += 1
        elif not framed:
            self._bytes += len(payload)
            if self.kind == "audio" or marker:  # an audio packet is a frame; other video ends one on its marker
                self._frames += 1
        if self.policer is not None and self.kind == "video":  # audio is never policed
            start = ts != self._frame_ts  # a frame's packets share its timestamp (RFC 3550 §5.1)
            self._frame_ts = ts
            key = desc[1] if desc is not None else True
            now = time.monotonic()
            if not self.policer.admit(now, len(payload), start, key):
                self._cut += 1
                if now - self._capped_at > KEYFRAME_RETRY_S:  # at most twice a second, not per packet
                    self._capped_at = now
                    if self.on_capped is not None:
                        self.on_capped()
                    if self.policer.wants_keyframe:
                        self.request_keyframe()
                return
            seq = (seq - self._cut) & 0xFFFF
        outs = self._native
        if outs and _fan_out(outs, seq, ts, marker, payload, level) is not None:  # type: ignore[misc]
            self.request_keyframe()  # an output still waits for a key frame, and its last request is old
        if len(outs) == len(self.subscribers):
            return
        sent = abs_send_time(time.time())  # once: every output sends it now, on this call stack
        for sub in self.subscribers:
            if not isinstance(sub.rtp, _NATIVE_OUTPUT):
                sub.push_packet(seq, ts, marker, payload, desc, sent, level)

    def wants_frames(self) -> bool:
        """Someone takes whole frames: a recorder, or an output whose aiortc sender reads frames (not
        at the RTP level). An output whose sender never started (a send-only site) reads nothing.
        Asked per packet: the subscribers' part is kept by outputs_changed, not walked here."""
        return bool(self.sinks) or self._frame_readers

    def on_frame(self, codec_name: str, clock_rate: int, data: bytes, timestamp: int) -> None:
        self._frames += 1
        self._bytes += len(data)
        key = is_keyframe(codec_name, data)
        if key and codec_name == "VP8":
            self.resolution = vp8_size(data) or self.resolution
        frame = EncodedFrame(data, timestamp, Fraction(1, clock_rate), key)
        if not self.packet_fed and self.kind == "audio":
            self._seq = (self._seq + 1) & 0xFFFF  # a phone's or a mix's Opus frame: one RTP payload
            sent = abs_send_time(time.time())
            for sub in self.subscribers:
                sub.push_packet(self._seq, timestamp, False, data, None, sent, None)
        for sub in self.subscribers:
            sub.push(frame)
        for sink in self.sinks:
            sink(frame)


class ForwardedTrack(MediaStreamTrack):
    """An outgoing track fed by whichever source the program assigns it."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[EncodedFrame | None] = asyncio.Queue(VIDEO_QUEUE if kind == "video" else AUDIO_QUEUE)
        self.source: Source | None = None
        self._need_keyframe = kind == "video"
        self._asked_at = 0.0  # when we last asked the source for a key frame
        self._offset = 0  # added to source timestamps to keep ours continuous
        self._last_out: int | None = None
        self._rebase = False
        self._frames_forwarded = 0  # on the frame path and through push_packet; fan_out counts in its Output
        self.frames_dropped = 0
        self._bytes_forwarded = 0
        self.recv_calls = 0
        self._freezes = 0  # gaps > FREEZE_S between forwarded frames of one source (a switch starts afresh)
        self._last_frame_at: float | None = None
        self.rtp: RtpOutput | NativeOutput | None = None  # forwarding at the RTP level, once its sender has started
        self._direct: DirectSend | None = None

    def _native_counter(self, name: str) -> int:
        return getattr(self.rtp, name) if isinstance(self.rtp, _NATIVE_OUTPUT) else 0

    @property
    def frames_forwarded(self) -> int:
        return self._frames_forwarded + self._native_counter("frames_forwarded")

    @property
    def bytes_forwarded(self) -> int:
        return self._bytes_forwarded + self._native_counter("bytes_forwarded")

    @property
    def freezes(self) -> int:
        return self._freezes + self._native_counter("freezes")

    def attach(self, sender: Any) -> None:
        """Forward at the RTP level through this aiortc sender once it starts (VP8, H.264 and Opus); until
        then, and for other codecs, frames go through aiortc's packetizer as before."""
        if not RTP_FORWARDING:
            return
        on_send_parameters(sender, lambda params: self._negotiated(sender, params))
        if NATIVE:
            answer_nacks_natively(sender, self._resend)
        else:
            answer_nacks(sender, lambda seq: self.rtp.retransmission(seq) if self.rtp is not None else None)

    def _resend(self, seq: int) -> bool:
        """A receiver's NACK where the C forwards: from the C output's history, or from the Python one's
        (H.264 goes through the Python path, see _negotiated)."""
        rtp = self.rtp
        if isinstance(rtp, _NATIVE_OUTPUT):
            return bool(rtp.send_retransmission(seq))
        if isinstance(rtp, RtpOutput) and self._direct is not None:
            data = rtp.retransmission(seq)
            return data is not None and self._direct(data, 0, 0, count=False)
        return False

    def _negotiated(self, sender: Any, params: Any) -> None:
        codec = params.codecs[0]
        name = codec.mimeType.split("/")[-1]
        if name.lower() not in ("vp8", "h264", "opus") or self.readyState != "live":
            return
        rtx = next((c.payloadType for c in params.codecs if c.mimeType.lower().endswith("/rtx")
                    and c.parameters.get("apt") == codec.payloadType), None)
        ids = extension_ids(params)
        negotiated = Negotiated(
            sender._ssrc, codec.payloadType, name, rtx, getattr(sender, "_rtx_ssrc", None) if rtx is not None else None,
            mid=params.muxId, mid_id=ids.mid, abs_send_time_id=ids.abs_send_time, audio_level_id=ids.audio_level)
        # media/native_output.c reads VP8 descriptors only: H.264 is forwarded by its Python specification
        if NATIVE and _native is not None and name.upper() != "H264":
            out = _native.Output(self.kind, negotiated)
            out.set_router(lambda: native_route(sender))
            self.rtp = out
        else:
            self.rtp = RtpOutput(self.kind, negotiated)
        self._direct = DirectSend(sender)
        while not self._queue.empty():  # aiortc's loop must not send these with its own numbering
            self._queue.get_nowait()
        if self.source is not None:
            self.source.outputs_changed()
            self.rtp.switched(time.monotonic())
            if self.kind == "video":
                self.source.request_keyframe()

    def push_packet(self, seq: int, ts: int, marker: bool, payload: bytes, desc: tuple[int | None, bool] | None,
                    sent: int | None = None, level: int | None = None) -> None:
        rtp = self.rtp
        if rtp is None or self._direct is None:
            return
        data = rtp.packet(seq, ts, marker, payload, desc, sent, level)
        if data is None:
            if self.source is not None and rtp.wants_keyframe(time.monotonic()):
                self.source.request_keyframe()
            return
        if not self._direct(data, len(payload), rtp.last_ts or 0):
            return
        self._bytes_forwarded += len(payload)
        if self.kind == "video" and not marker:
            return
        self._frames_forwarded += 1
        if self.kind == "video":
            now = time.monotonic()
            if self._last_frame_at is not None and now - self._last_frame_at > FREEZE_S:
                self._freezes += 1
            self._last_frame_at = now

    def switch(self, source: Source | None) -> None:
        if source is self.source:
            return
        if self.source is not None:
            self.source.unsubscribe(self)
        self.source = source
        self._rebase = True
        self._last_frame_at = None
        if self.rtp is not None:
            self.rtp.switched(time.monotonic())
        if source is not None:
            source.subscribe(self)
            if self.kind == "video":
                self._need_keyframe = True
                self._asked_at = time.monotonic()
                source.request_keyframe()

    def keyframe_requested(self) -> None:
        """The receiver lost pictures (PLI/FIR): ask the current source for a keyframe."""
        if self.source is not None:
            self.source.request_keyframe()

    def push(self, frame: EncodedFrame) -> None:
        if self.rtp is not None:
            return  # forwarded packet by packet (push_packet)
        if self._need_keyframe:
            if not frame.keyframe:
                # Still waiting: a request can be lost, or sent before the source's SSRC was known.
                now = time.monotonic()
                if now - self._asked_at > KEYFRAME_RETRY_S and self.source is not None:
                    self._asked_at = now
                    self.source.request_keyframe()
                return
            self._need_keyframe = False
        if self._rebase:
            step = int(frame.time_base.denominator / (30 if self.kind == "video" else 50))
            self._offset = (self._last_out + step - frame.pts) if self._last_out is not None else 0
            self._rebase = False
        if self._queue.full():
            # A slow receiver: drop what is queued rather than buffer without bound, restart on a keyframe.
            dropped = self._queue.qsize()
            while not self._queue.empty():
                self._queue.get_nowait()
            self.frames_dropped += dropped
            if self.kind == "video":
                self._need_keyframe = True
                self.keyframe_requested()
                return
        pts = frame.pts + self._offset
        self._last_out = pts
        self._queue.put_nowait(EncodedFrame(frame.data, pts, frame.time_base, frame.keyframe))

    async def recv(self) -> EncodedFrame:  # type: ignore[override]
        self.recv_calls += 1
        if self.recv_calls == 1 and self.source is not None:
            self.source.outputs_changed()  # it reads frames: its source's packets must reach push()
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        self._frames_forwarded += 1
        self._bytes_forwarded += len(frame.data)
        if self.kind == "video":
            now = time.monotonic()
            if self._last_frame_at is not None and now - self._last_frame_at > FREEZE_S:
                self._freezes += 1
            self._last_frame_at = now
        return frame

    def stop(self) -> None:
        if self.source is not None:
            self.source.unsubscribe(self)
            self.source = None
        if self.readyState == "live":
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        super().stop()
