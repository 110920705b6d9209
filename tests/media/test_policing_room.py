"""A site that sends far more than its slot was reserved for, through one media room with real aiortc
peer connections: the node tells it its rate (REMB), drops its frames whole once it stays above, and
the other site keeps decoding what stays within the reservation."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from aiortc.codecs import vpx
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci
from av import VideoFrame

from prometheus_client.parser import text_string_to_metric_families

from media.contracts.node import SessionFigures
from media.policing import TOLERANCE
from monitoring.alarm_config import parse_config
from monitoring.alarm_rules import leg_observations
from monitoring.alarm_window import leg_windows
from monitoring.alarms import AlarmEngine, AlarmKind
from monitoring.metrics import render
from monitoring.pipeline import QualityPipeline
from rooms.topology import demo_topology
from media.room import LegState, MediaRoom, leg_counters
from media.rtp_output import vp8_descriptor
from tests.media.peers import PatternTrack, SitePeer, until

RESERVED_KBPS = 500
SENDER_BPS = 1_500_000  # three times the slot


class NoiseTrack(PatternTrack):
    """A camera with a band of noise across its picture: the encoder spends every bit it is allowed."""

    async def recv(self) -> VideoFrame:
        frame = await super().recv()
        plane = frame.planes[0]
        band = plane.buffer_size // 8
        plane.update(bytes(plane)[:-band] + os.urandom(band))
        return frame


class GreedyPeer(SitePeer):
    """A site that ignores what the node tells it: its encoder stays at SENDER_BPS; the REMBs it is
    sent are noted (bits per second), not obeyed."""

    def __init__(self, shade: int):
        super().__init__(shade)
        camera = next(t for t in self.pc.getTransceivers() if t.kind == "video" and t.sender.track is not None)
        self.sender = camera.sender
        self.sender.replaceTrack(NoiseTrack(shade))
        self.told: list[int] = []
        original = self.sender._handle_rtcp_packet

        async def handle(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                self.told.append(unpack_remb_fci(packet.fci)[0])
                return
            await original(packet)
        self.sender._handle_rtcp_packet = handle

    def force_bitrate(self) -> bool:
        encoder = getattr(self.sender, "_RTCRtpSender__encoder", None)
        if encoder is None:
            return False
        encoder.target_bitrate = SENDER_BPS
        return True


class CountingPeer(SitePeer):
    """A site that counts the video payload bytes it receives, and notes every frame that comes after
    a gap in timestamps (a dropped frame) and whether it was a key frame."""

    def __init__(self, shade: int):
        super().__init__(shade)
        self.video_bytes = 0
        self.after_gap: list[bool] = []  # per frame after a gap: was it a key frame
        self._last_ts: int | None = None
        for t in self.pc.getTransceivers():
            if t.kind == "video":
                self._watch(t.receiver)

    def _watch(self, rx: Any) -> None:
        original = rx._handle_rtp_packet

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            codec = rx._RTCRtpReceiver__codecs.get(packet.payload_type)
            if codec is not None and codec.mimeType.lower() == "video/vp8":
                self.video_bytes += len(packet.payload)
                start, _, key = vp8_descriptor(packet.payload)
                first = packet.payload[0] & 0x10 and packet.payload[0] & 0x07 == 0  # S bit, partition 0
                if first and self._last_ts is not None and (packet.timestamp - self._last_ts) & 0xFFFFFFFF > 3000 * 2:
                    self.after_gap.append(key)
                if first:
                    self._last_ts = packet.timestamp
            await original(packet, arrival_time_ms=arrival_time_ms)
        rx._handle_rtp_packet = handle


async def test_a_sender_over_its_reservation_is_held_to_it_in_whole_frames_and_told_its_rate() -> None:
    saved = vpx.MAX_BITRATE
    vpx.MAX_BITRATE = max(saved, SENDER_BPS)
    room = MediaRoom("ses_policed", "jl")
    greedy, viewer = GreedyPeer(40), CountingPeer(120)
    try:
        for site, peer in (("jl", greedy), ("cc", viewer)):
            _, answer = await room.join(site, await peer.offer(), video_kbps=RESERVED_KBPS)
            await peer.accept(answer)
        await until(lambda: all(l.state is LegState.CONNECTED for l in room.legs.values()), what="legs connected")
        await until(greedy.force_bitrate, what="the greedy site's encoder")

        # the monitoring the control plane runs on the node's figures, rounds shortened for the test
        cfg = parse_config({"window": {"samples": 2}, "hysteresis": {"raise_samples": 1}})
        pipeline, engine, topo, alarms = QualityPipeline(), AlarmEngine(cfg.hysteresis), demo_topology(), []

        async def hold_bitrate() -> None:
            while True:  # aiortc's own receiver-side estimate must not lower it either
                greedy.force_bitrate()
                now = time.time()
                pipeline.sample([SessionFigures(session="ses_policed", host="jl", node="in-process",
                                                legs=await room.live_figures(now))], now)
                alarms.extend(e for e in engine.step(leg_observations(cfg, topo, leg_windows(pipeline, 2)), now)
                              if e.kind is AlarmKind.OVER_RESERVATION)
                await asyncio.sleep(0.2)
        holder = asyncio.ensure_future(hold_bitrate())
        try:
            source = await until(lambda: room.legs["jl"].sources.get("video"), what="jl's camera")
            await until(lambda: source.policed_frames > 0, timeout=20, what="jl's frames policed")
            frames_before = sum(viewer.frames.values())
            t0, in0, out0 = time.monotonic(), source.bytes, viewer.video_bytes
            await until(lambda: time.monotonic() - t0 >= 6, timeout=10, what="a 6 s window")
            await until(lambda: alarms, timeout=5, what="the over-reservation alarm")
            dt = time.monotonic() - t0
            kbps_in = 8 * (source.bytes - in0) / dt / 1000
            kbps_out = 8 * (viewer.video_bytes - out0) / dt / 1000
            decoded = sum(viewer.frames.values()) - frames_before
            print(f"policing: sender {kbps_in:.0f} kbit/s in, receiver {kbps_out:.0f} kbit/s out, "
                  f"reserved {RESERVED_KBPS}, {source.policed_frames} frames dropped, {decoded / dt:.1f} fps decoded")
        finally:
            holder.cancel()
        assert kbps_in > 2 * RESERVED_KBPS  # the sender really was over its slot
        assert kbps_out <= RESERVED_KBPS * TOLERANCE * 1.1  # what it passed on was not (10 %: window edges)
        assert decoded >= 6  # the receiver kept decoding pictures
        # frames dropped whole: after every gap the receiver's next picture is a key frame
        assert viewer.after_gap and all(viewer.after_gap), viewer.after_gap
        # told its rate (REMB), never more (the node's own estimate is capped to it)
        assert greedy.told and max(greedy.told) == RESERVED_KBPS * 1000, sorted(set(greedy.told))
        assert leg_counters(room.legs["jl"]).policed_frames == source.policed_frames > 0
        assert leg_counters(room.legs["cc"]).policed_frames == 0  # the viewer's camera was within its slot
        # an alarm names the site, and /metrics counts its dropped frames
        assert [(a.event, a.subject) for a in alarms] == [("raised", "ses_policed/jl")]
        assert "sends above its reserved video rate" in alarms[0].message
        assert alarms[0].message.startswith(demo_topology().sites["jl"].name)  # type: ignore[index]
        text = render(pipeline, lambda: {}, lambda: 0, lambda: {}).decode()
        family = next(f for f in text_string_to_metric_families(text) if f.name == "confctl_leg_policed_frames")
        assert {s.labels["site"] for s in family.samples if s.value > 0} == {"jl"}
    finally:
        vpx.MAX_BITRATE = saved
        for p in (greedy, viewer):
            await p.close()
        await room.close()
