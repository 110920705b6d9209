"""Wiring a peer connection into the forwarding path: the same for a site's leg and a trunk.

An incoming track becomes a Source fed by a tap on its receiver (never decoded), whose key-frame
requests go back to the sender; outgoing ForwardedTracks pass the far side's PLI/FIR to their
source; video is one codec end to end (the session's: VP8, or H.264 constrained baseline), since
frames are forwarded, not transcoded.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcpeerconnection import filter_preferred_codecs

from media.aiortc_hooks import EncodedTap, on_keyframe_request, on_rtp_packet, request_keyframe, tap_receiver
from media.forwarding import ForwardedTrack, Source
from media.grants import VideoCodec

Spawn = Callable[[Awaitable[Any], str], Any]


def source_of_receiver(receiver: RTCRtpReceiver, kind: str, spawn: Spawn) -> tuple[Source, EncodedTap]:
    src = Source(kind, lambda: spawn(request_keyframe(receiver), "key-frame request"))
    tap = tap_receiver(receiver, lambda codec, frame: src.on_frame(codec.name, codec.clockRate, frame.data,
                                                                   frame.timestamp))
    on_rtp_packet(receiver, src.on_packet, src.wants_frames, native_source=src)
    return src, tap


def receiver_of(pc: RTCPeerConnection, track: Any) -> RTCRtpReceiver:
    return next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)


# H.264 as every WebRTC endpoint and room system decodes it: constrained baseline level 3.1, FU-A
# (packetization-mode 1). aiortc's capabilities also list Baseline (42001f); a session offers one
# profile so that every leg sends what every other leg decodes.
H264_PROFILE_LEVEL_ID = "42e01f"
CODEC_WORDS = {"vp8": "VP8", "h264": f"H.264 (constrained baseline {H264_PROFILE_LEVEL_ID}, packetization-mode=1)"}
_CODECS_ATTR = "_codecs"  # RTCRtpTransceiver's negotiated codecs (aiortc 1.16; tests/media/test_h264_room.py)


def video_codecs(codec: VideoCodec = "vp8") -> list[Any]:
    """The video codec capabilities a session's legs may negotiate, with RTX (retransmissions)."""
    def wanted(c: Any) -> bool:
        if c.mimeType == "video/rtx":
            return True
        if codec == "h264":
            return (c.mimeType == "video/H264" and c.parameters.get("packetization-mode") == "1"
                    and str(c.parameters.get("profile-level-id", "")).lower() == H264_PROFILE_LEVEL_ID)
        return c.mimeType == "video/VP8"
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if wanted(c)]


def prefer_codec(pc: RTCPeerConnection, codec: VideoCodec = "vp8") -> list[str]:
    """Every video transceiver negotiates the session's codec and nothing else. Before an offer the
    preferences shape it; once a remote offer is applied, aiortc has already chosen its codecs (it reads
    preferences only then), so the answer's are narrowed here too, with aiortc's own filter. Returns
    the mids of video sections whose remote offer lacks the codec (the caller refuses the offer)."""
    wanted = video_codecs(codec)
    lacking = []
    for t in pc.getTransceivers():
        if t.kind != "video":
            continue
        t.setCodecPreferences(wanted)
        negotiated = getattr(t, _CODECS_ATTR)  # [] until a remote description is applied
        if negotiated:
            narrowed = filter_preferred_codecs(negotiated, wanted)
            if not narrowed:
                lacking.append(t.mid or "?")
            setattr(t, _CODECS_ATTR, narrowed)
    return lacking


def prefer_vp8(pc: RTCPeerConnection) -> None:
    prefer_codec(pc, "vp8")


def relay_keyframe_requests(pc: RTCPeerConnection) -> None:
    for t in pc.getTransceivers():
        if isinstance(t.sender.track, ForwardedTrack):
            on_keyframe_request(t.sender, t.sender.track.keyframe_requested)
