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

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media.forwarding import ForwardedTrack, Source
from media.forwarding_wiring import prefer_vp8, receiver_of, relay_keyframe_requests, source_of_receiver
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
            receiver = receiver_of(pc, track)
            slot = next(i for i, t in enumerate(pc.getTransceivers()) if t.receiver is receiver)
            self.inbound[slot], _ = source_of_receiver(receiver, track.kind, self._tasks.spawn)

    def bytes_sent(self) -> int:
        return sum(t.bytes_forwarded for t in self.out)


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
        prefer_vp8(self.child.pc)
        await self.child.pc.setLocalDescription(await self.child.pc.createOffer())
        await self.parent.pc.setRemoteDescription(
            RTCSessionDescription(self.child.pc.localDescription.sdp, "offer"))
        for track in self.parent.out:
            self.parent.pc.addTrack(track)
        prefer_vp8(self.parent.pc)
        await self.parent.pc.setLocalDescription(await self.parent.pc.createAnswer())
        await self.child.pc.setRemoteDescription(
            RTCSessionDescription(self.parent.pc.localDescription.sdp, "answer"))
        relay_keyframe_requests(self.child.pc)
        relay_keyframe_requests(self.parent.pc)

    async def close(self) -> None:
        for side in (self.child, self.parent):
            for t in side.out:
                t.stop()
            await side.pc.close()
        await self._tasks.close()
