"""An H.264 session through one media room: real aiortc peer connections over loopback, H.264 encoded
by the sites and forwarded by the node without decoding or transcoding."""
from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from media.h264 import h264_keyframe
from media.room import LegState, MediaRoom, SignallingError
from media.rtp_output import RtpOutput
from tests.media.peers import SitePeer, until

SHADES = {"jl": 40, "cc": 120, "cc-nongan": 200}


class WatchingPeer(SitePeer):
    """A site that also notes, per received video section (by mid), when key-frame packets arrive and
    what each decoded picture's background shade is (whose camera it is)."""

    def __init__(self, shade: int, talking: bool = False):
        super().__init__(shade, talking)
        self.keyframes: dict[str, list[float]] = {}
        self.shades: dict[str, list[tuple[float, int]]] = {}
        self.codecs: set[str] = set()
        for t in self.pc.getTransceivers():
            if t.kind == "video":
                self._watch(t)

    def _watch(self, transceiver: Any) -> None:
        rx = transceiver.receiver
        original = rx._handle_rtp_packet

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            codec = rx._RTCRtpReceiver__codecs.get(packet.payload_type)
            if codec is not None and not codec.mimeType.endswith("/rtx"):
                self.codecs.add(codec.mimeType)
                if h264_keyframe(packet.payload):
                    self.keyframes.setdefault(transceiver.mid, []).append(time.monotonic())
            await original(packet, arrival_time_ms=arrival_time_ms)
        rx._handle_rtp_packet = handle

    async def _count(self, idx: int, track: Any) -> None:  # SitePeer's reader of each received video track
        mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
        try:
            while True:
                frame = await track.recv()
                self.frames[idx] += 1
                row = bytes(frame.planes[0])[: frame.width]
                self.shades.setdefault(mid, []).append((time.monotonic(), int(statistics.median(row))))
        except MediaStreamError:
            pass


def video_mids(leg: Any) -> list[str]:
    """The mids of a leg's program slots, in slot order."""
    return [next(t.mid for t in leg.pc.getTransceivers() if t.sender.track is out) for out in leg.video_out]


def near(shade: int, expected: int) -> bool:
    return abs(shade - expected) <= 12  # lossy coding moves a flat field by a few levels


async def test_three_sites_in_an_h264_session_and_a_speaker_switch_brings_a_key_frame_within_a_second():
    room = MediaRoom("ses_h264", "jl")
    peers = {site: WatchingPeer(shade) for site, shade in SHADES.items()}
    switches: dict[tuple[str, str], float] = {}  # (receiving site, mid) -> when its slot switched source
    try:
        for site, peer in peers.items():
            leg, answer = await room.join(site, await peer.offer(), codec="h264")
            # the node answers H.264 constrained baseline, packetization-mode 1, and no other video codec
            video_codecs = {line.split(" ", 1)[1] for line in answer.splitlines()
                            if line.startswith("a=rtpmap:") and "/90000" in line}
            assert video_codecs == {"H264/90000", "rtx/90000"}
            assert "profile-level-id=42e01f" in answer and "packetization-mode=1" in answer
            await peer.accept(answer)
        await until(lambda: all(l.state is LegState.CONNECTED for l in room.legs.values()), what="legs connected")
        await until(lambda: all(len(p.shades) == 2 and min(len(s) for s in p.shades.values()) >= 10
                                for p in peers.values()), timeout=30, what="H.264 pictures decoded at every site")
        assert all(p.codecs == {"video/H264"} for p in peers.values())
        # forwarded packet by packet by the Python path (media/rtp_output.py), nothing decoded on the node
        outs = [o for leg in room.legs.values() for o in leg.video_out]
        assert all(isinstance(o.rtp, RtpOutput) and o.rtp.h264 and o.frames_forwarded >= 10 for o in outs)
        assert all(t.decoder_inputs == 0 for leg in room.legs.values() for t in leg.taps)
        # what each site sees is the program's sites' cameras
        for site, peer in peers.items():
            program = room.legs[site].program
            for mid, src in zip(video_mids(room.legs[site]), program.video):
                assert near(peer.shades[mid][-1][1], SHADES[src]), (site, mid, src)

        def note_switches(site: str) -> None:
            leg = room.legs[site]
            last = [leg.program]  # called after the room set leg.program: compare with the one before

            def on_program(program: Any) -> None:
                for i, mid in enumerate(video_mids(leg)):
                    if last[0] is None or last[0].video[i] != program.video[i]:
                        switches[(site, mid)] = time.monotonic()
                last[0] = program
            leg.on_program = on_program

        for site in peers:
            note_switches(site)
        programs = {site: room.legs[site].program for site in peers}
        peers["cc"].microphone.talking = True  # a site speaks: the host sees it first, its slots switch
        await until(lambda: room.speaker == "cc", timeout=20, what="cc elected speaker")
        switched = {(s, m): t for (s, m), t in switches.items() if s != "cc"}
        assert switched, f"no slot switched: {programs} -> {[room.legs[s].program for s in peers]}"
        for (site, mid), at in switched.items():
            slot = video_mids(room.legs[site]).index(mid)
            src = room.legs[site].program.video[slot]
            # a key frame reaches the receiver within 1 s of its switch, and it then decodes the new source
            key = await until(lambda: next((k for k in peers[site].keyframes.get(mid, []) if k >= at), None),
                              timeout=5, what=f"a key frame at {site}'s {mid}")
            assert key - at < 1.0, f"{site}'s slot {slot}: key frame {key - at:.2f} s after the switch"
            await until(lambda: any(t > at and near(s, SHADES[src]) for t, s in peers[site].shades[mid]),
                        timeout=5, what=f"{site} decoding {src} after the switch")
    finally:
        for p in peers.values():
            await p.close()
        await room.close()


async def test_an_offer_without_constrained_baseline_h264_is_refused_in_words():
    room = MediaRoom("ses_h264", "jl")
    peer = SitePeer(40)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in ("video/VP8", "video/rtx")]
    for t in peer.pc.getTransceivers():
        if t.kind == "video":
            t.setCodecPreferences(vp8)
    try:
        with pytest.raises(SignallingError, match=r"H\.264 \(constrained baseline 42e01f, packetization-mode=1\)"):
            await room.join("jl", await peer.offer(), codec="h264")
        assert room.legs == {}
    finally:
        await peer.close()
        await room.close()


async def test_a_vp8_session_answers_vp8_only():
    room = MediaRoom("ses_vp8", "jl")
    peer = SitePeer(40)  # aiortc offers VP8 and H.264
    try:
        _, answer = await room.join("jl", await peer.offer())
        assert {line.split(" ", 1)[1] for line in answer.splitlines()
                if line.startswith("a=rtpmap:") and "/90000" in line} == {"VP8/90000", "rtx/90000"}
    finally:
        await peer.close()
        await room.close()
