"""A node-to-node leg of one session: the program's streams between a child node and its parent.

Two peer connections, one per node (the child offers, the parent answers), each with one
audio and two video slots each way. A slot is a ForwardedTrack on the sending side (fed
by whichever site's stream the cascade puts there) and a Source on the receiving side
(which that node's rooms subscribe to as the remote site's stream). Encoded frames are
forwarded, never decoded; a key-frame request from the far side reaches the slot's source
like any receiver's (PLI/FIR through the sender hook). Bytes on a trunk are the bytes on
the link between the two nodes' sites.

Each end is a `TrunkSide`; `offer`, `answer` and `accept` are the SDP steps, so the two ends
may sit in one process (`Trunk`, every node of a session in `confctl serve`) or in two
node processes that exchange the SDP over the root node's /trunk WebSocket.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from media.aiortc_hooks import receive_directly
from media.forwarding import NATIVE, RTP_FORWARDING, ForwardedTrack, Source
from media.forwarding_wiring import prefer_vp8, receiver_of, relay_keyframe_requests, source_of_receiver
from supervision import TaskGroup

log = logging.getLogger("media.trunk")
KINDS = ("audio", "video", "video")  # slot 0 audio, slots 1 and 2 video
NO_SLOTS: list[str | None] = [None] * len(KINDS)


def trunk_pc(ice_servers: list[Any] | None = None) -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=ice_servers or [], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


class TrunkSide:
    """One node's end: the slots it sends and the slots it receives."""

    def __init__(self, name: str, pc: RTCPeerConnection, tasks: TaskGroup,
                 on_connected: Callable[[], None] = lambda: None):
        self.name = name
        self.pc = pc
        self.out: list[ForwardedTrack] = [ForwardedTrack(k) for k in KINDS]
        self.inbound: list[Source | None] = [None] * len(KINDS)
        self._tasks = tasks
        self.connected = False

        @pc.on("track")
        def on_track(track: Any) -> None:
            receiver = receiver_of(pc, track)
            slot = next(i for i, t in enumerate(pc.getTransceivers()) if t.receiver is receiver)
            self.inbound[slot], _ = source_of_receiver(receiver, track.kind, self._tasks.spawn)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and not self.connected:
                self.connected = True
                if RTP_FORWARDING:
                    receive_directly(pc, native=NATIVE)  # SRTP straight from the socket, as on legs
                log.info("trunk end %s connected", name)
                on_connected()
            elif pc.connectionState in ("failed", "closed"):
                self.connected = False

    def bytes_sent(self) -> int:
        return sum(t.bytes_forwarded for t in self.out)

    async def offer(self) -> str:
        """The child's first step: every slot sendrecv."""
        for track in self.out:
            track.attach(self.pc.addTransceiver(track, direction="sendrecv").sender)  # RTP-level once started
        prefer_vp8(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def answer(self, offer_sdp: str) -> str:
        """The parent's step: its slots answer the child's, in order."""
        await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        for track in self.out:
            track.attach(self.pc.addTrack(track))
        prefer_vp8(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        relay_keyframe_requests(self.pc)
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        relay_keyframe_requests(self.pc)

    async def close(self) -> None:
        for t in self.out:
            t.stop()
        await self.pc.close()


class Trunk:
    """Both ends in this process (every node of the session runs in `confctl serve`)."""

    def __init__(self, child: str, parent: str, ice_servers: list[Any] | None = None,
                 on_connected: Callable[[], None] = lambda: None):
        self._tasks = TaskGroup(f"trunk {child}-{parent}")
        self.child = TrunkSide(child, trunk_pc(ice_servers), self._tasks, on_connected)
        self.parent = TrunkSide(parent, trunk_pc(ice_servers), self._tasks)

    @property
    def connected(self) -> bool:
        return self.child.connected

    async def open(self) -> None:
        await self.child.accept(await self.parent.answer(await self.child.offer()))

    async def close(self) -> None:
        for side in (self.child, self.parent):
            await side.close()
        await self._tasks.close()
