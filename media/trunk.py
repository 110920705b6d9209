"""A node-to-node leg of one session: the program's streams between a child node and its parent.

Two peer connections, one per node (the child offers, the parent answers), each with one
audio and two video slots each way. A slot is a ForwardedTrack on the sending side (fed
by whichever site's stream the cascade puts there) and a Source on the receiving side
(which that node's rooms subscribe to as the remote site's stream). Encoded frames are
forwarded, never decoded; a key-frame request from the far side reaches the slot's source
like any receiver's (PLI/FIR through the sender hook). Bytes on a trunk are the bytes on
the link between the two nodes' sites.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from media.aiortc_hooks import on_keyframe_request, request_keyframe, tap_receiver
from media.forwarding import ForwardedTrack, Source
from media.supervision import TaskGroup

log = logging.getLogger("media.trunk")
KINDS = ("audio", "video", "video")  # slot 0 audio, slots 1 and 2 video


class TrunkSide:
    """One node's end: the slots it sends and the slots it receives."""

    def __init__(self, name: str, pc: RTCPeerConnection, tasks: TaskGroup):
        self.name = name
        self.pc = pc
        self.out: list[ForwardedTrack] = [ForwardedTrack(k) for k in KINDS]
        self.inbound: list[Source | None] = [None] * len(KINDS)
        self._tasks = tasks

        @pc.on("track")
        def on_track(track: Any) -> None:
            transceivers = pc.getTransceivers()
            receiver = next(t.receiver for t in transceivers if t.receiver.track is track)
            slot = next(i for i, t in enumerate(transceivers) if t.receiver is receiver)
            src = Source(track.kind, lambda: self._tasks.spawn(request_keyframe(receiver), "trunk key frame"))
            self.inbound[slot] = src
            tap_receiver(receiver, lambda codec, frame: src.on_frame(codec.name, codec.clockRate, frame.data,
                                                                     frame.timestamp))

    def hook_keyframes(self) -> None:
        for t in self.pc.getTransceivers():
            if isinstance(t.sender.track, ForwardedTrack):
                on_keyframe_request(t.sender, t.sender.track.keyframe_requested)

    def bytes_sent(self) -> int:
        return sum(t.bytes_forwarded for t in self.out)


def _vp8_only(pc: RTCPeerConnection) -> None:
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    for t in pc.getTransceivers():
        if t.kind == "video":
            t.setCodecPreferences(vp8)  # one codec end to end: frames are forwarded, not transcoded


class Trunk:
    def __init__(self, child: str, parent: str, ice_servers: list[Any] | None = None,
                 on_connected: Callable[[], None] = lambda: None):
        config = RTCConfiguration(iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self._tasks = TaskGroup(f"trunk {child}-{parent}")
        self.child = TrunkSide(child, RTCPeerConnection(config), self._tasks)
        self.parent = TrunkSide(parent, RTCPeerConnection(config), self._tasks)
        self.connected = False
        self._on_connected = on_connected

        @self.child.pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.child.pc.connectionState == "connected" and not self.connected:
                self.connected = True
                log.info("trunk %s -> %s connected", child, parent)
                self._on_connected()

    async def open(self) -> None:
        for track in self.child.out:
            self.child.pc.addTransceiver(track, direction="sendrecv")
        _vp8_only(self.child.pc)
        await self.child.pc.setLocalDescription(await self.child.pc.createOffer())
        await self.parent.pc.setRemoteDescription(
            RTCSessionDescription(self.child.pc.localDescription.sdp, "offer"))
        for track in self.parent.out:
            self.parent.pc.addTrack(track)
        _vp8_only(self.parent.pc)
        await self.parent.pc.setLocalDescription(await self.parent.pc.createAnswer())
        await self.child.pc.setRemoteDescription(
            RTCSessionDescription(self.parent.pc.localDescription.sdp, "answer"))
        self.child.hook_keyframes()
        self.parent.hook_keyframes()

    async def close(self) -> None:
        for side in (self.child, self.parent):
            for t in side.out:
                t.stop()
            await side.pc.close()
        await self._tasks.close()
