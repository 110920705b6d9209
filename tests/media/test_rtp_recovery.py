"""RTP-level forwarding under loss and with a receiver that stops reading, with real aiortc peers:
NACKs from a receiver are answered from the node's own history (as RTX), so 5 % loss on the way to
it leaves its video decoding; 5 % loss on the way in is NACKed by the node's forward-only receive
path; a receiver that reads nothing takes nothing from the others.

The freeze bound here is 1 s, not 500 ms: aiortc's receiver (the test's viewer) NACKs a packet once,
so when the retransmission is lost too (5 % of the time here, about once a run) it waits for a key
frame — the longest gap measured 0.04–0.50 s over five runs. A browser repeats its NACKs: the 500 ms
bound is asserted with Chromium as the viewer in tests/test_join_page.py."""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from media.aiortc_hooks import ice_protocols, on_keyframe_request
from media.room import LegState, MediaRoom
from media.synthetic import ReplayVideo, video_clip
from tests.media.lossy_path import LossyPath
from tests.media.peers import PatternTrack, ToneTrack, until

CONFIG = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class Camera:
    """A site sending a real 640×360 VP8 clip at 800 kbit/s (about 80 packets a second)."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(CONFIG)
        self.video = ReplayVideo(video_clip(640, 360, 800))
        self.pc.addTransceiver(ToneTrack(), direction="sendrecv")
        sender = self.pc.addTransceiver(self.video, direction="sendrecv").sender
        on_keyframe_request(sender, self.video.request_keyframe)


class Viewer:
    """A site that decodes what it receives and keeps each decoded frame's arrival time."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(CONFIG)
        self.pc.addTransceiver(ToneTrack(), direction="sendrecv")
        self.pc.addTransceiver(PatternTrack(90), direction="sendrecv")
        self.times: list[float] = []
        self.tasks: list[asyncio.Task[Any]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                self.tasks.append(asyncio.ensure_future(self._frames(track)))

    async def _frames(self, track: Any) -> None:
        try:
            while True:
                await track.recv()
                self.times.append(time.monotonic())
        except MediaStreamError:
            pass

    def longest_gap(self, since: float) -> float:
        times = [since, *(t for t in self.times if t >= since), time.monotonic()]
        return max(b - a for a, b in zip(times, times[1:]))


async def join(room: MediaRoom, site: str, pc: RTCPeerConnection) -> None:
    await pc.setLocalDescription(await pc.createOffer())
    _, answer = await room.join(site, pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))


@contextlib.asynccontextmanager
async def camera_to_viewer(session: str) -> AsyncIterator[tuple[MediaRoom, Camera, Viewer]]:
    """A camera site and a viewer site in one room, the viewer already decoding the camera."""
    room = MediaRoom(session, "jl")
    camera, viewer = Camera(), Viewer()
    try:
        await join(room, "jl", camera.pc)
        await join(room, "cc", viewer.pc)
        await until(lambda: all(l.state is LegState.CONNECTED for l in room.legs.values()) and len(viewer.times) > 60,
                    timeout=30, what="the viewer decoding the camera")
        yield room, camera, viewer
    finally:
        for pc in (camera.pc, viewer.pc):
            await pc.close()
        for t in viewer.tasks:
            t.cancel()
        await room.close()


async def six_seconds_of_loss(path: LossyPath, viewer: Viewer) -> tuple[float, int]:
    """Impair `path` with 5 % loss for six seconds: (the viewer's longest gap, frames it decoded)."""
    path.impair(loss=0.05)
    since, decoded = time.monotonic(), len(viewer.times)
    await until(lambda: time.monotonic() - since > 6 and path.dropped > 20, timeout=30, what="six seconds of 5 % loss")
    return viewer.longest_gap(since), len(viewer.times) - decoded


async def test_nacks_are_answered_from_the_nodes_history_so_5_percent_loss_leaves_no_long_freeze():
    async with camera_to_viewer("ses_loss") as (room, camera, viewer):
        out = room.legs["cc"].video_out[0]
        assert out.rtp is not None  # forwarding at the RTP level
        path = LossyPath(room.legs["cc"].pc)  # the node's socket towards the viewer
        gap, decoded = await six_seconds_of_loss(path, viewer)
        print(f"dropped {path.dropped} packets, {out.rtp.retransmitted} retransmitted, "
              f"{decoded} frames decoded, longest gap {1000 * gap:.0f} ms")
        assert out.rtp.retransmitted > 0  # the viewer's NACKs were answered
        assert decoded > 6 * 20  # still decoding (the clip runs at 30 fps)
        assert gap < 1.0


async def test_loss_on_the_way_in_is_asked_for_again_by_the_node_and_forwarded_when_it_comes():
    """The node's own receive path (ForwardOnly, no jitter buffer) NACKs what the camera's packets
    lacked; the camera's retransmissions are forwarded to the viewer in the gap they fill."""
    async with camera_to_viewer("ses_uploss") as (room, camera, viewer):
        rx = next(t.receiver for t in room.legs["jl"].pc.getTransceivers() if t.kind == "video")
        fast = rx._confctl_forward_only
        assert fast.packets > 0  # the camera's video takes the forward-only path
        path = LossyPath(camera.pc)  # the camera's socket towards the node
        gap, decoded = await six_seconds_of_loss(path, viewer)
        print(f"camera lost {path.dropped} packets; the node sent {fast.nacks} NACKs and got "
              f"{fast.retransmissions} retransmissions; {decoded} frames decoded, longest gap {1000 * gap:.0f} ms")
        assert fast.nacks > 0 and fast.retransmissions > 0
        assert decoded > 6 * 20
        assert gap < 1.0


async def test_a_receiver_that_stops_reading_takes_nothing_from_the_others():
    room = MediaRoom("ses_slow", "jl")
    camera, good, stuck = Camera(), Viewer(), Viewer()
    try:
        await join(room, "jl", camera.pc)
        await join(room, "cc", good.pc)
        await join(room, "sp", stuck.pc)
        await until(lambda: len(good.times) > 30 and len(stuck.times) > 30, timeout=30, what="both viewers decoding")
        # The stuck site's socket is never read again: every datagram to it is thrown away unread.
        for proto in ice_protocols(stuck.pc):
            proto.datagram_received = lambda data, addr: None
        since, before = time.monotonic(), len(good.times)
        stuck_frames = len(stuck.times)
        await until(lambda: time.monotonic() - since > 4, timeout=10, what="four seconds")
        assert len(stuck.times) <= stuck_frames + 5  # it really gets nothing
        assert len(good.times) - before > 4 * 20 and good.longest_gap(since) < 1.0  # the other is untouched
        assert room.legs["sp"].video_out[0].rtp.packets > 0  # the node kept sending: nothing waits on a reader
    finally:
        for pc in (camera.pc, good.pc, stuck.pc):
            await pc.close()
        for v in (good, stuck):
            for t in v.tasks:
                t.cancel()
        await room.close()
