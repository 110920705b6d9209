"""A media room: one WebRTC leg per site of a session, encoded media forwarded between them.

Legs are answerers: the site offers audio (sendrecv), video (sendrecv) and a
second video (recvonly); the room answers with its program tracks on them.
A second leg from the same site replaces the first (a technician reloading
the page must not be locked out by a stale leg).
"""
from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci, unpack_remb_fci

from media.aiortc_hooks import (EncodedTap, inbound_streams, on_audio_level, receive_directly, sender_started,
                                 start_idle_senders)
from media.contracts.node import EndedLeg, Output, PhoneLeg, Program as ProgramFigures, RtcpFigures, WebrtcLeg
from media.forwarding import NATIVE, RTP_FORWARDING, ForwardedTrack, Source
from media.forwarding_wiring import CODEC_WORDS, prefer_codec, receiver_of, relay_keyframe_requests, source_of_receiver
from media.grants import VideoCodec
from media.policing import Policer
from media.port_range import PortRangeExhausted
from media.pcm_leg import CodecThread, PcmLeg, RoomMixer
from media.program import Program, program_for, within_layout
from media.recording import TrackRecorder
from media.speaker import SpeakerSelector
from supervision import TaskGroup
from rooms.end_reason import EndReason
from rooms.ids import SessionId, SiteId
from rooms.plan import Layout


class SessionWide(Protocol):
    """Where a cascade room's speaker and program are decided: the root's Cascade, or a child
    node's link to it (media/cascade_link.py)."""

    @property
    def speaker(self) -> SiteId | None: ...

    def audio_level(self, site: SiteId, level: int) -> None: ...

    def forget(self, site: SiteId) -> None: ...

    def reprogram(self) -> None: ...

log = logging.getLogger("media.room")


class LegState(str, enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


TOLD = (EndReason.REPLACED, EndReason.ENDED_BY_ADMIN, EndReason.PREEMPTED)  # the page is told, and does not rejoin


class SignallingError(ValueError):
    """The peer sent something we cannot use (garbage SDP, wrong media sections)."""


class NoMediaPorts(RuntimeError):
    """The node's media port range is full: the leg is refused with this sentence."""


_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"  # aiortc 1.16: the SSRC its receiver reports from


def inbound_ssrcs(receiver: Any) -> list[int]:
    return list(getattr(receiver, "_RTCRtpReceiver__active_ssrc", {}).keys())


@dataclass(eq=False)
class Leg:
    site: SiteId
    pc: RTCPeerConnection
    state: LegState = LegState.NEW
    sources: dict[str, Source] = field(default_factory=dict)  # kind -> what this site sends
    taps: list[EncodedTap] = field(default_factory=list)
    recorders: list[TrackRecorder] = field(default_factory=list)
    video_out: list[ForwardedTrack] = field(default_factory=list)
    audio_out: ForwardedTrack | None = None
    program: Program | None = None
    on_program: Callable[[Program], None] | None = None  # the signalling connection's listener
    on_rejoin: Callable[[str], None] | None = None  # tell the site to join again through the control plane
    last_sample: tuple[float, int, int] | None = None  # (time, bytes in, bytes out) of the last live figures
    transitions: list[tuple[str, str]] = field(default_factory=list)
    id: str = field(default_factory=lambda: "leg_" + secrets.token_hex(8))  # its call record's key
    joined_at: float = field(default_factory=time.time)
    on_ended: Callable[[str], None] | None = None  # tell the site why the node ended its leg
    layout: Layout | None = None  # the plan gives this site less than the full program
    on_layout: Callable[[Layout | None, str], None] | None = None  # tell the site its layout changed, and why

    def set_state(self, new: LegState) -> None:
        if new is not self.state:
            log.info("leg %s: %s -> %s", self.site, self.state.value, new.value)
            self.transitions.append((self.state.value, new.value))
            self.state = new


class MediaRoom:
    def __init__(self, session_id: SessionId, host: SiteId, ice_servers: list[Any] | None = None,
                 record_dir: Path | None = None, echo: bool = False, cascade: SessionWide | None = None,
                 node_id: str | None = None):
        self.session_id = session_id
        self.echo = echo  # a self-test room: each site gets its own media back through the node
        self.host = host
        self.record_dir = record_dir  # None: this session is not recorded
        self.legs: dict[SiteId, Leg] = {}
        self.speakers = SpeakerSelector()
        self._ice = ice_servers or []  # never fall back to Google's STUN: there is no internet here
        self.phones: dict[SiteId, PcmLeg] = {}  # sites on the telephone (through the SIP gateway)
        self.mixer: RoomMixer | None = None  # decodes audio for phones; exists only while one is here
        self._stopped_codecs: list[CodecThread] = []  # the mixers' threads, ending; joined at close
        self._tasks = TaskGroup(f"room {session_id}")
        # In a cascade this room is one node's part of the session: the session-wide speaker
        # and program live in the Cascade, and sites on other nodes reach this room through
        # trunks, as `remote` sources.
        self.cascade = cascade
        self.node_id = node_id  # which node of the cascade this room is (None: the only one)
        self.remote: dict[tuple[SiteId, str], Source] = {}
        self.trunk_audio: dict[str, Source] = {}  # what each trunk brings in: phones here hear it mixed
        self.ended: list[EndedLeg] = []  # legs that ended, for their call records (the node collects them)
        self._phone_since: dict[SiteId, float] = {}

    # -- legs -----------------------------------------------------------
    async def join(self, site: SiteId, offer_sdp: str, layout: Layout | None = None,
                   codec: VideoCodec = "vp8", video_kbps: int | None = None) -> tuple[Leg, str]:
        """Answer a site's offer; replaces any leg the site already has. `layout`: what its plan gives it;
        `codec`: the session's video codec, the only one the answer accepts (frames are not transcoded);
        `video_kbps`: the rate its camera's slot was reserved for, told to it (REMB) and policed."""
        if site in self.legs:
            await self.leave(site, EndReason.REPLACED)
        # MAX_BUNDLE: with aiortc's default (balanced) a second video m-line stays on a transport
        # that never connects (aiortc 1.16 marks it bundled before the BUNDLE group is applied).
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        leg = Leg(site, pc, layout=layout)
        self.legs[site] = leg

        @pc.on("track")
        def on_track(track: Any) -> None:
            receiver = receiver_of(pc, track)
            src, tap = source_of_receiver(receiver, track.kind, self._tasks.spawn)
            leg.sources[track.kind] = src
            leg.taps.append(tap)
            if track.kind == "video" and video_kbps:
                src.police(Policer(video_kbps))
                cap_remb(receiver, video_kbps)
                src.on_capped = lambda: self._tasks.spawn(send_remb(receiver, video_kbps), "REMB")
                self._tasks.spawn(tell_reservation(receiver, video_kbps), "REMB")
            if track.kind == "audio":
                on_audio_level(receiver, lambda level: self._audio_level(site, level))
                if self.mixer is not None:
                    self.mixer.attach(site, src)
            if self.record_dir is not None:
                rec = TrackRecorder(self.record_dir / f"{site}-{track.kind}-{int(time.time() * 1000)}.webm", track.kind)
                leg.recorders.append(rec)
                src.sinks.append(rec.push)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                leg.set_state(LegState.CONNECTED)
                if RTP_FORWARDING:
                    receive_directly(pc, native=NATIVE)  # SRTP straight from the socket to the handlers
                if await start_idle_senders(pc):
                    log.warning("leg %s: started senders aiortc had left idle", site)
                self._reprogram()
            elif pc.connectionState in ("failed", "closed") and self.legs.get(site) is leg:
                await self.leave(site, EndReason.CONNECTION_FAILED if pc.connectionState == "failed" else EndReason.CLOSED)

        try:
            offer = RTCSessionDescription(sdp=offer_sdp, type="offer")
            await pc.setRemoteDescription(offer)
        except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError... on garbage SDP
            await self.leave(site, EndReason.BAD_OFFER)
            raise SignallingError(f"unusable offer: {exc!r}") from None
        kinds = [t.kind for t in pc.getTransceivers()]
        if kinds.count("video") < 1 or kinds.count("audio") < 1:
            await self.leave(site, EndReason.BAD_OFFER)
            raise SignallingError("the offer needs an audio and a video section (and a second video to see two sites)")
        leg.audio_out = ForwardedTrack("audio")
        leg.audio_out.attach(pc.addTrack(leg.audio_out))  # RTP-level forwarding once it starts
        for t in pc.getTransceivers():
            if t.kind == "video":
                out = ForwardedTrack("video")
                leg.video_out.append(out)
                out.attach(pc.addTrack(out))
        lacking = prefer_codec(pc, codec)
        if lacking:
            await self.leave(site, EndReason.BAD_OFFER)
            raise SignallingError(f"this session's video is {CODEC_WORDS[codec]}; the offer's video sections "
                                  f"{', '.join(lacking)} do not offer it")
        relay_keyframe_requests(pc)
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except PortRangeExhausted as exc:  # --ice-ports is full: refused in words, counted by the node
            log.warning("leg %s refused: %s", site, exc.strerror)
            await self.leave(site, EndReason.NO_MEDIA_PORTS)
            raise NoMediaPorts(f"this media node has no free media port: {exc.strerror}") from None
        leg.set_state(LegState.CONNECTING)
        return leg, pc.localDescription.sdp

    async def drop(self, leg: Leg, reason: EndReason | None = None) -> None:
        """Close this leg if it is still the site's current one (not a replacement)."""
        if self.legs.get(leg.site) is leg:
            await self.leave(leg.site, reason or EndReason.LEFT)

    async def leave(self, site: SiteId, reason: EndReason | None = None) -> None:
        leg = self.legs.pop(site, None)
        if leg is None:
            return
        reason = reason or EndReason.LEFT
        if not self.echo:  # a self-test is not a call
            self.ended.append(EndedLeg(id=leg.id, session=self.session_id, site=site, kind="webrtc",
                                       node=self.node_id, joined_at=leg.joined_at, left_at=time.time(),
                                       reason=reason.value))
        if leg.on_ended is not None and reason in TOLD:
            leg.on_ended(reason.value)
        for t in [*leg.video_out, *([leg.audio_out] if leg.audio_out else [])]:
            t.stop()
        for src in leg.sources.values():
            for sub in list(src.subscribers):
                sub.switch(None)
        leg.set_state(LegState.CLOSED)
        self._forget_speaker(site)
        await leg.pc.close()
        for rec in leg.recorders:  # finalize the files: cues and duration written
            await asyncio.to_thread(rec.close)
        self._reprogram()

    # -- telephone sites ---------------------------------------------------------------
    def add_phone(self, site: SiteId) -> PcmLeg:
        """A site joins by telephone: its PCM becomes an Opus source, it hears a mix of the others."""
        self.remove_phone(site)
        self._phone_since[site] = time.time()
        src = Source("audio", lambda: None)
        if self.mixer is None:
            self.mixer = RoomMixer(f"pcm {self.session_id}")
            for s, leg in self.legs.items():
                if "audio" in leg.sources:
                    self.mixer.attach(s, leg.sources["audio"])
            for s, other in self.phones.items():
                self.mixer.attach(s, other.source)
            for key, src_ in self.trunk_audio.items():
                self.mixer.attach(key, src_)
        phone = PcmLeg(site, src, self.mixer.codec)
        self.phones[site] = phone
        self.mixer.attach(site, src)
        self._reprogram()
        return phone

    def phone_audio(self, site: SiteId, pcm: bytes) -> None:
        """20 ms of what the phone's microphone hears."""
        phone = self.phones.get(site)
        if phone is not None:
            self._audio_level(site, phone.push_pcm(pcm))  # muted: silence, never the speaker

    def toggle_phone_mute(self, site: SiteId) -> None:
        """The phone site's microphone off or on again (its keypad's *6, sip_stub/dtmf.py)."""
        phone = self.phones.get(site)
        if phone is not None:
            phone.muted = not phone.muted
            log.info("room %s: phone site %s %s", self.session_id, site, "muted" if phone.muted else "unmuted")

    def phone_mix(self, site: SiteId) -> bytes:
        """20 ms of what the phone should hear: every other site, mixed."""
        return self.mixer.mix_for(site) if self.mixer is not None else b"\x00" * 320

    def remove_phone(self, site: SiteId) -> None:
        phone = self.phones.pop(site, None)
        if phone is None:
            return
        self.ended.append(EndedLeg(id="phone_" + secrets.token_hex(8), session=self.session_id, site=site,
                                   kind="sip", node=self.node_id, joined_at=self._phone_since.pop(site, time.time()),
                                   left_at=time.time(), reason=EndReason.HUNG_UP.value))
        for sub in list(phone.source.subscribers):
            sub.switch(None)
        self._forget_speaker(site)
        if self.mixer is not None:
            self.mixer.detach(site, phone.source)
            if not self.phones:  # nobody needs decoded audio any more
                for s, leg in self.legs.items():
                    self.mixer.detach(s, leg.sources.get("audio"))
                for key, src in self.trunk_audio.items():
                    self.mixer.detach(key, src)
                self.mixer.codec.stop()
                self._stopped_codecs.append(self.mixer.codec)  # joined in close()
                self.mixer = None
        self._reprogram()

    def set_trunk_audio(self, sources: dict[str, Source]) -> None:
        """The audio each trunk brings (the program's, from other nodes), for the phones' mix here."""
        if self.mixer is not None:
            for key, src in self.trunk_audio.items():
                if sources.get(key) is not src:
                    self.mixer.detach(key, src)
            for key, src in sources.items():
                self.mixer.attach(key, src)
        self.trunk_audio = dict(sources)

    def source_of(self, site: SiteId | None, kind: str) -> Source | None:
        """A site's stream as this room can reach it: its leg or phone here, or a trunk's slot."""
        if site is None:
            return None
        if site in self.legs:
            return self.legs[site].sources.get(kind)
        phone = self.phones.get(site)
        if phone is not None:
            return phone.source if kind == "audio" else None
        return self.remote.get((site, kind))

    async def close(self) -> None:
        for site in list(self.phones):
            self.remove_phone(site)
        for site in list(self.legs):
            await self.leave(site, EndReason.SESSION_CLOSED)
        await self._tasks.close()
        stopped, self._stopped_codecs = self._stopped_codecs, []
        for codec in stopped:
            await asyncio.to_thread(codec.join)

    # -- program ----------------------------------------------------------
    def set_layout(self, site: SiteId, layout: Layout | None, why: str) -> bool:
        """The site's plan changed while it is here (pre-emption, restoration): forward only the new
        layout from now on and tell the site. False when the site has no leg here or nothing changes."""
        leg = self.legs.get(site)
        if leg is None or leg.layout == layout:
            return False
        leg.layout = layout
        if leg.on_layout is not None:
            leg.on_layout(layout, why)
        self._reprogram()
        return True

    def _forget_speaker(self, site: SiteId) -> None:
        (self.cascade if self.cascade is not None else self.speakers).forget(site)

    @property
    def speaker(self) -> SiteId | None:
        if self.cascade is not None:
            return self.cascade.speaker
        return SiteId(self.speakers.speaker) if self.speakers.speaker else None

    def _audio_level(self, site: SiteId, level: int) -> None:
        if site not in self.legs and site not in self.phones:
            return
        if self.cascade is not None:
            self.cascade.audio_level(site, level)
            return
        if self.speakers.feed(site, level, time.monotonic()) is not None:
            log.info("room %s: speaker is now %s", self.session_id, site)
            self._reprogram()  # the switch asks the new source for a key frame

    def has_site(self, site: str) -> bool:
        """The site is here, by a WebRTC leg or by telephone."""
        return site in self.legs or site in self.phones

    @property
    def empty(self) -> bool:
        return not self.legs and not self.phones

    @property
    def present(self) -> list[SiteId]:
        """Sites here with media flowing, in join order (legs, then phones)."""
        return [s for s, l in self.legs.items() if l.state is LegState.CONNECTED] + list(self.phones)

    def _reprogram(self) -> None:
        if self.cascade is not None:
            self.cascade.reprogram()  # the program is session-wide: every node's room is redone
            return
        present = self.present
        for site in self.legs:
            self.apply_program(site, Program((site, None), site) if self.echo
                               else program_for(site, self.host, present, self.speaker, self.speakers.earlier))

    def apply_program(self, site: SiteId, program: Program) -> None:
        """Feed a leg's outputs from the program's sources, wherever they are."""
        leg = self.legs.get(site)
        if leg is not None:
            program = within_layout(program, leg.layout)  # only what its plan reserved crosses its link
            if leg.audio_out is None:
                # Still applying its offer (no outgoing tracks yet): a program recorded now would
                # switch nothing, and "unchanged" later would never subscribe it. It is
                # programmed when it connects.
                return
            if program != leg.program:
                leg.program = program
                if leg.on_program is not None:
                    leg.on_program(program)
            # Switched even when the program is unchanged: a site on another node becomes
            # reachable only once its trunk is up (switching to the same source is a no-op).
            for out, src_site in zip(leg.video_out, program.video):
                out.switch(self.source_of(src_site, "video"))  # a phone site has no video: the slot stays empty
            if leg.audio_out is not None:
                leg.audio_out.switch(self.source_of(program.audio, "audio"))

    def figures(self) -> list[WebrtcLeg | PhoneLeg]:
        return [leg_counters(leg) for leg in self.legs.values()] + [phone_counters(p) for p in self.phones.values()]

    async def live_figures(self, now: float) -> list[WebrtcLeg | PhoneLeg]:
        """Counters plus bitrates from byte deltas since the last call and the peer connection's RTCP figures."""
        out: list[WebrtcLeg | PhoneLeg] = []
        for leg in list(self.legs.values()):
            fig = leg_counters(leg)
            bytes_in, bytes_out = sum(fig.bytes_in.values()), fig.bytes_forwarded
            prev = leg.last_sample
            if prev is not None and now > prev[0]:
                fig.bitrate_in_kbps = round(8 * (bytes_in - prev[1]) / (now - prev[0]) / 1000)
                fig.bitrate_out_kbps = round(8 * (bytes_out - prev[2]) / (now - prev[0]) / 1000)
            leg.last_sample = (now, bytes_in, bytes_out)
            try:
                rtcp = rtcp_figures(leg.pc, await leg.pc.getStats())
            except Exception as exc:  # a leg closing under us has no stats; the rest still report
                fig.stats_error = repr(exc)
            else:
                fig = fig.model_copy(update=dict(rtcp))
            out.append(fig)
        out += [phone_counters(p) for p in self.phones.values()]
        for f in out:
            f.node = self.node_id  # a cascade's node room: the node it stands for
        return out


def phone_counters(phone: PcmLeg) -> PhoneLeg:
    return PhoneLeg(site=phone.site, muted=phone.muted, frames_in={"audio": phone.source.frames},
                    bytes_in={"audio": phone.source.bytes}, samples_in=phone.samples_in)


async def send_remb(receiver: Any, kbps: int) -> bool:
    """Tell the sender the most it may send (REMB, draft-alvestrand-rmcat-remb) for every SSRC the
    receiver has seen; False if none yet."""
    ssrcs = list(inbound_ssrcs(receiver))
    if ssrcs:
        await receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=getattr(receiver, _RTCP_SSRC, 0) or 0,
                                                 media_ssrc=0, fci=pack_remb_fci(kbps * 1000, ssrcs)))
    return bool(ssrcs)


def cap_remb(receiver: Any, kbps: int) -> None:
    """aiortc's receiver sends its own bandwidth estimate as REMB: never above the reservation (a
    sender that obeys the latest REMB would otherwise be told it may send more than its slot)."""
    original = receiver._send_rtcp

    async def _send_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                bitrate, ssrcs = 0, []
            if bitrate > kbps * 1000:
                packet = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=packet.ssrc, media_ssrc=packet.media_ssrc,
                                        fci=pack_remb_fci(kbps * 1000, ssrcs))
        await original(packet)
    receiver._send_rtcp = _send_rtcp


async def tell_reservation(receiver: Any, kbps: int) -> None:
    """Tell a newly joined sender its reserved rate once its first packets have come (its SSRC known);
    while it sends more, the policer repeats it (Source.on_capped)."""
    for _ in range(100):  # 10 s: a sender that sends nothing has nothing to be told
        if await send_remb(receiver, kbps):
            return
        await asyncio.sleep(0.1)


def leg_counters(leg: Leg) -> WebrtcLeg:
    video = leg.sources.get("video")
    outs = [*leg.video_out, *([leg.audio_out] if leg.audio_out else [])]
    return WebrtcLeg(
        site=leg.site, state=leg.state.value,
        frames_in={k: s.frames for k, s in leg.sources.items()},
        bytes_in={k: s.bytes for k, s in leg.sources.items()},
        resolution=None if video is None or video.resolution is None else "%dx%d" % video.resolution,
        frames_forwarded=sum(t.frames_forwarded for t in leg.video_out),
        frames_dropped=sum(t.frames_dropped for t in leg.video_out),
        freezes=sum(t.freezes for t in leg.video_out),
        policed_frames=video.policed_frames if video is not None and video.policer is not None else None,
        bytes_forwarded=sum(t.bytes_forwarded for t in outs),
        program=None if leg.program is None else ProgramFigures(video=list(leg.program.video), audio=leg.program.audio),
        senders_started=sum(sender_started(t.sender) for t in leg.pc.getTransceivers() if t.sender.track is not None),
        outputs=[Output(kind=t.kind, live=t.readyState == "live", recv_calls=t.recv_calls, queued=t._queue.qsize(),
                        subscribed=t.source is not None) for t in outs])


def rtcp_figures(pc: RTCPeerConnection, report: Any) -> RtcpFigures:
    """Loss and jitter of what the site sends us (its media streams, not retransmissions); RTT from
    its receiver reports about what we send."""
    streams = inbound_streams(pc)  # media.aiortc_hooks' per-SSRC dicts, an in-process shape
    rtts = [s.roundTripTime for s in report.values() if s.type == "remote-inbound-rtp" and s.roundTripTime is not None]
    return RtcpFigures(
        packets_lost=sum(x["packets_lost"] for x in streams),
        packets_received=sum(x["packets_received"] for x in streams),
        jitter_ms=round(max((x["jitter_ms"] for x in streams), default=0.0), 1),
        # each medium judged against its own tolerance (monitoring/alarm_rules.py: audio by the E-model's)
        jitter_ms_by_kind={k: round(max(x["jitter_ms"] for x in streams if x["kind"] == k), 1)
                           for k in {x["kind"] for x in streams}},
        rtt_ms=round(1000 * max(rtts), 1) if rtts else None)
