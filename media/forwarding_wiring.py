"""Wiring a peer connection into the forwarding path: the same for a site's leg and a trunk.

An incoming track becomes a Source fed by a tap on its receiver (never decoded), whose key-frame
requests go back to the sender; outgoing ForwardedTracks pass the far side's PLI/FIR to their
source; video is VP8 end to end, since frames are forwarded, not transcoded.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender

from media.aiortc_hooks import EncodedTap, on_keyframe_request, on_rtp_packet, request_keyframe, tap_receiver
from media.forwarding import ForwardedTrack, Source

Spawn = Callable[[Awaitable[Any], str], Any]


def source_of_receiver(receiver: RTCRtpReceiver, kind: str, spawn: Spawn) -> tuple[Source, EncodedTap]:
    src = Source(kind, lambda: spawn(request_keyframe(receiver), "key-frame request"))
    tap = tap_receiver(receiver, lambda codec, frame: src.on_frame(codec.name, codec.clockRate, frame.data,
                                                                   frame.timestamp))
    on_rtp_packet(receiver, src.on_packet, src.wants_frames, native_source=src)
    return src, tap


def receiver_of(pc: RTCPeerConnection, track: Any) -> RTCRtpReceiver:
    return next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)


def prefer_vp8(pc: RTCPeerConnection) -> None:
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    for t in pc.getTransceivers():
        if t.kind == "video":
            t.setCodecPreferences(vp8)


def relay_keyframe_requests(pc: RTCPeerConnection) -> None:
    for t in pc.getTransceivers():
        if isinstance(t.sender.track, ForwardedTrack):
            on_keyframe_request(t.sender, t.sender.track.keyframe_requested)
