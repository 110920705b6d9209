"""The only place that reaches into aiortc's internals. Pinned to aiortc 1.16.x.

aiortc's RTCRtpReceiver always decodes: complete frames from the jitter
buffer go through `__decoder_queue` to a decoder thread. For an SFU we swap
that queue for an `EncodedTap`, which hands each encoded frame to the
forwarder on the event loop and never feeds the decoder (its thread waits in
`get()` until the receiver stops). RTP-level forwarding (media/rtp_output.py)
also reads each packet as the receiver gets it, learns what a sender
negotiated, sends through its SRTP session and ICE pair directly and answers
its NACKs. A connected leg's datagrams come straight from its sockets, drained
per wakeup (`receive_directly`), and a source nobody takes frames from skips
the receiver's frame assembly (`ForwardOnly`).
The per-packet path in C (media/native.h) is handed what it needs from here (`native_route`,
`_native_receive_route`, `ForwardOnly._take_natively`) and reads a few of the same attributes by
name (a DTLS transport's `_state`, `_tx_srtp`, `_rx_srtp`; a receiver's `_enabled`; an asyncio
transport's `_closing`), and calls pylibsrtp's libsrtp by address, its signature checked first
(`check_libsrtp`).
tests/media/test_aiortc_hooks.py fails loudly if these internals move.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender, clock
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, HeaderExtensionsMap, RtcpPsfbPacket, pack_remb_fci, unwrap_rtx

from media.native_routes import ReceiveRoute, SendRoute
from media.port_range import UdpPorts
from media.rtp_input import RtpHeader, parse_header

TESTED_AIORTC = ("1.16.",)
_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_THREAD_ATTR = "_RTCRtpReceiver__decoder_thread"
_SSRC_ATTR = "_RTCRtpReceiver__active_ssrc"
_STREAMS_ATTR = "_RTCRtpReceiver__remote_streams"  # ssrc -> StreamStatistics, RTX streams included
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"  # rtx ssrc -> media ssrc

FrameHandler = Callable[[Any, Any], None]  # (RTCRtpCodecParameters, JitterFrame)


class AiortcInternalsMoved(RuntimeError):
    pass


def check_aiortc() -> None:
    if not aiortc.__version__.startswith(TESTED_AIORTC):
        raise AiortcInternalsMoved(f"media/aiortc_hooks.py is tested with aiortc {TESTED_AIORTC}, found {aiortc.__version__}")


class EncodedTap:
    """Stands in for the receiver's decoder queue: frames go to the forwarder, never to a decoder."""

    def __init__(self, on_frame: FrameHandler):
        self._on_frame = on_frame
        self._stopped = threading.Event()
        self.frames = 0
        self.decoder_inputs = 0  # frames the decoder thread was given: stays 0

    def put(self, item: Any) -> None:  # called on the event loop by _handle_rtp_packet
        if item is None:
            self._stopped.set()
            return
        codec, frame = item
        self.frames += 1
        self._on_frame(codec, frame)

    def get(self, block: bool = True, timeout: float | None = None) -> None:  # the decoder thread
        self._stopped.wait()
        return None  # "stop": the thread ends the remote track and exits


def tap_receiver(receiver: RTCRtpReceiver, on_frame: FrameHandler) -> EncodedTap:
    """Route a receiver's encoded frames to `on_frame`; call before the receiver starts."""
    check_aiortc()
    if not hasattr(receiver, _QUEUE_ATTR) or not hasattr(receiver, _THREAD_ATTR):
        raise AiortcInternalsMoved("RTCRtpReceiver has no decoder queue/thread attributes any more")
    if getattr(receiver, _THREAD_ATTR) is not None:
        raise RuntimeError("tap_receiver must run before the receiver starts (in the 'track' event)")
    tap = EncodedTap(on_frame)
    setattr(receiver, _QUEUE_ATTR, tap)
    return tap


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI upstream for every SSRC the receiver has seen; False if none yet."""
    ssrcs = list(getattr(receiver, _SSRC_ATTR, {}).keys())
    for ssrc in ssrcs:
        await receiver._send_rtcp_pli(ssrc)
    return bool(ssrcs)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` when the remote side asks this sender for a keyframe (PLI/FIR).

    aiortc only sets a flag for its own encoder, which forwarded packets ignore.
    """
    original = sender._send_keyframe

    def _send_keyframe() -> None:
        original()
        callback()

    sender._send_keyframe = _send_keyframe  # type: ignore[method-assign]


_NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01


def _fast_ntp_time() -> int:
    t = time.time()
    seconds = int(t)
    micros = int((t - seconds) * 1_000_000)
    return ((seconds + _NTP_UNIX_OFFSET_S) << 32) | ((micros << 32) // 1_000_000)


def _fast_ms() -> int:
    return int((time.time() + _NTP_UNIX_OFFSET_S) * 1000)


def install_fast_clock() -> None:
    """aiortc's clock builds timezone-aware datetimes and subtracts them, twice for every RTP packet
    a sender sends (abs-send-time, SR bookkeeping): 7 % of a forwarding node's CPU, measured with
    py-spy at 8 receivers. The same values from time.time(), for every module that calls them."""
    clock.current_ntp_time = _fast_ntp_time
    clock.current_ms = _fast_ms


def raise_bitrate_caps(max_bps: int = 6_000_000, default_bps: int = 2_000_000) -> None:
    """aiortc's encoders cap VP8 at 1.5 Mbit/s and H.264 at 3: too low for HD (used by synthetic senders)."""
    from aiortc.codecs import h264, vpx
    for mod in (vpx, h264):
        mod.MAX_BITRATE = max(mod.MAX_BITRATE, max_bps)
        mod.DEFAULT_BITRATE = max(mod.DEFAULT_BITRATE, default_bps)


_ON_LEVEL = "_confctl_on_level"


def on_audio_level(receiver: RTCRtpReceiver, callback: Callable[[int], None]) -> None:
    """Call `callback(level)` with the RFC 6464 level of every RTP packet that carries one.

    The transport delivers each packet through `receiver._handle_rtp_packet`; the level is
    read from the parsed header extension before the packet goes on as usual. The forward-only
    path (`ForwardOnly`) reads it from the raw header and calls the same callback.
    """
    original = receiver._handle_rtp_packet
    setattr(receiver, _ON_LEVEL, callback)  # the forward-only path reads the level itself

    async def _handle_rtp_packet(packet: Any, arrival_time_ms: int) -> None:
        level = packet.extensions.audio_level
        if level is not None:
            callback(level[1])
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = _handle_rtp_packet  # type: ignore[method-assign]


_SENDER_STARTED = "_RTCRtpSender__started"


def sender_started(sender: RTCRtpSender) -> bool:
    return bool(getattr(sender, _SENDER_STARTED, True))


async def start_idle_senders(pc: Any) -> int:
    """Start senders aiortc left idle on a connected peer connection; returns how many.

    Measured here under CPU load (about 1 leg in 10): the connect task that
    setRemoteDescription schedules and the one setLocalDescription schedules
    race, and a leg can connect with its receivers running but no sender
    started, so it sends nothing. Starting them again is safe: send() does
    nothing for a sender already started.
    """
    started = 0
    for t in pc.getTransceivers():
        if (t.currentDirection in ("sendonly", "sendrecv") and not sender_started(t.sender)
                and t.sender.transport.state == "connected"):
            await t.sender.send(pc._RTCPeerConnection__localRtp(t))
            started += 1
    return started


def inbound_streams(pc: Any) -> list[dict[str, Any]]:
    """Loss and jitter of each media stream a peer receives, retransmission (RTX) streams left out.

    aiortc's getStats puts every stream of a receiver under one id, so once RTX packets arrive the
    RTX stream's figures replace the media stream's (and freeze when retransmissions stop): read
    its per-SSRC statistics instead.
    """
    out = []
    for t in pc.getTransceivers():
        r = t.receiver
        rtx = set(getattr(r, _RTX_ATTR, {}))
        for ssrc, st in list(getattr(r, _STREAMS_ATTR, {}).items()):
            if ssrc in rtx:
                continue
            out.append({"kind": t.kind, "ssrc": ssrc, "packets_received": st.packets_received,
                        "packets_lost": max(0, st.packets_lost), "jitter_ms": 1000 * st.jitter / st._clockrate})
    return out


def ice_protocols(pc: Any) -> list[Any]:
    """The UDP protocols (one per local candidate) of a peer connection's bundled ICE transport:
    where fault injection, emulated delay and the direct receive hook in (aioice internals)."""
    return list(pc.getTransceivers()[0].receiver.transport.transport._connection._protocols)


# -- RTP-level forwarding (media/rtp_output.py) -----------------------------------------------
_CODECS_ATTR = "_RTCRtpReceiver__codecs"  # payload type -> RTCRtpCodecParameters


# (codec name, seq, ts, marker, payload, framed, audio level or None)
PacketHandler = Callable[[str, int, int, bool, bytes, bool, "int | None"], None]


def on_rtp_packet(receiver: RTCRtpReceiver, callback: PacketHandler,
                  wants_frames: Callable[[], bool] | None = None, native_source: Any = None) -> None:
    """Call `callback(codec name, seq, ts, marker, payload, framed, level)` with every media RTP packet
    the receiver gets (retransmissions unwrapped to the packet they repeat; `level` its RFC 6464 audio
    level, None without one).

    Through aiortc's own handling (statistics, NACKs, bandwidth estimate, frames) `framed` is True.
    With `wants_frames`, once the leg receives directly (`receive_directly`) and while
    `wants_frames()` is False, a packet takes the forward-only path instead (`ForwardOnly`: the
    same statistics, NACKs and estimate, no frames) and `framed` is False. With `native_source` (a
    media.forwarding.Source) and a leg receiving natively, its streams then move to media/native_input.c,
    which counts and forwards them itself: `callback` is not called for those packets."""
    original = receiver._handle_rtp_packet
    kinds = _PayloadKinds(receiver)

    async def _handle_rtp_packet(packet: Any, arrival_time_ms: int) -> None:
        kind = kinds.get(packet.payload_type)
        if kind is not None:
            name, apt = kind
            level = packet.extensions.audio_level
            level = level[1] if level is not None else None
            if apt is None:
                callback(name, packet.sequence_number, packet.timestamp, bool(packet.marker), packet.payload, True,
                         level)
            else:
                target = kinds.repeated(packet.ssrc, apt, packet.payload)
                if target is not None:
                    p = unwrap_rtx(packet, payload_type=apt, ssrc=target[0])
                    callback(target[1], p.sequence_number, p.timestamp, bool(p.marker), p.payload, True, level)
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = _handle_rtp_packet  # type: ignore[method-assign]
    if wants_frames is not None:
        receiver._confctl_forward_only = ForwardOnly(receiver, kinds, callback, wants_frames,  # type: ignore[attr-defined]
                                                     native_source)


def forward_only_packets(receiver: RTCRtpReceiver) -> int:
    """Packets of this receiver that took the forward-only path, in Python or in C (0 if it has none)."""
    fast = getattr(receiver, "_confctl_forward_only", None)
    return fast.packets + sum(st.packets for st in fast.native) if fast is not None else 0


class _PayloadKinds:
    """A receiver's payload types, each classified once: (codec name, the media payload type if RTX).
    (aiortc's codec.name splits the MIME type on every read.)"""

    def __init__(self, receiver: RTCRtpReceiver):
        self.codecs: dict[int, Any] = getattr(receiver, _CODECS_ATTR)  # aiortc's own dicts, kept current
        self.rtx: dict[int, int] = getattr(receiver, _RTX_ATTR)
        self._kinds: dict[int, tuple[str, Any]] = {}

    def get(self, pt: int) -> tuple[str, Any] | None:
        kind = self._kinds.get(pt)
        if kind is None and pt in self.codecs:
            codec = self.codecs[pt]
            kind = self._kinds[pt] = (codec.name, codec.parameters.get("apt") if codec.mimeType.lower().endswith("/rtx")
                                      else None)
        return kind

    def clock_rate(self, pt: int) -> int:
        return self.codecs[pt].clockRate

    def repeated(self, rtx_ssrc: int, apt: Any, payload: bytes) -> tuple[int, str] | None:
        """(media SSRC, codec name) of the stream an RTX packet repeats, or None: aiortc drops it too."""
        media_ssrc = self.rtx.get(rtx_ssrc)
        if media_ssrc is None or len(payload) < 2 or apt not in self.codecs:
            return None
        return media_ssrc, self.codecs[apt].name


_ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
_NACK_ATTR = "_RTCRtpReceiver__nack_generator"
_RTCP_SSRC_ATTR = "_RTCRtpReceiver__rtcp_ssrc"
_ACTIVE_S = 1000  # ms: how often a stream's "last seen" is refreshed (aiortc reads it to the second)


class _Seq:
    """What aiortc's statistics and NACK generator read of a packet."""
    __slots__ = ("sequence_number", "timestamp")

    def __init__(self, seq: int, ts: int):
        self.sequence_number, self.timestamp = seq, ts


class ForwardOnly:
    """aiortc's handling of an incoming RTP packet (RTCRtpReceiver._handle_rtp_packet) less what
    only frames need: the bandwidth estimate and REMB, the streams' statistics (receiver reports,
    inbound_streams), NACKs for gaps and RTX unwrapping stay; no packet object, no coroutine, no
    depacketizer or jitter buffer. Returns False to leave a packet to aiortc's path."""

    def __init__(self, receiver: RTCRtpReceiver, kinds: _PayloadKinds, callback: PacketHandler,
                 wants_frames: Callable[[], bool], native_source: Any = None):
        self.receiver, self.kinds, self.callback, self.wants_frames = receiver, kinds, callback, wants_frames
        self.native_source = native_source
        self.native: list[Any] = []  # media.native.Stream: this receiver's streams taken in C
        self._native_ssrcs: set[int] = set()
        self._vars = vars(receiver)
        self._streams: dict[int, Any] = getattr(receiver, _STREAMS_ATTR)
        self._active: dict[int, Any] = getattr(receiver, _SSRC_ATTR)
        self._active_at = 0
        self.packets = 0  # taken on this path
        self.retransmissions = 0  # of them, RTX packets the sender sent on our NACKs
        self.nacks = 0  # NACKs sent

    def __call__(self, data: bytes, h: RtpHeader, arrival_ms: int) -> bool:
        r = self.receiver
        if not r._enabled or self.wants_frames():
            return False
        kind = self.kinds.get(h.payload_type)
        if kind is None:
            return False
        name, apt = kind
        v = self._vars
        ssrc, seq, ts = h.ssrc, h.seq, h.ts
        if h.audio_level is not None:
            on_level = v.get(_ON_LEVEL)
            if on_level is not None:
                on_level(h.audio_level)
        if v[_ESTIMATOR_ATTR] is not None and h.abs_send_time is not None:
            self._estimate(h.abs_send_time, arrival_ms, len(data) - h.start, ssrc)
        if ssrc not in self._active or arrival_ms - self._active_at >= _ACTIVE_S:
            self._active[ssrc] = clock.current_datetime()
            self._active_at = arrival_ms
        st = self._streams.get(ssrc)
        if st is None:
            st = self._streams[ssrc] = StreamStatistics(self.kinds.clock_rate(h.payload_type))
        p = _Seq(seq, ts)
        st.add(p)
        payload = data[h.start:h.end]
        if apt is not None:  # a retransmission: the packet it repeats (RFC 4588)
            target = self.kinds.repeated(ssrc, apt, payload)
            if target is None:
                return True  # dropped, as aiortc drops it
            ssrc, name = target
            seq, payload = (payload[0] << 8) | payload[1], payload[2:]
            p = _Seq(seq, ts)
            self.retransmissions += 1
        nack = v[_NACK_ATTR]
        if nack is not None and nack.add(p):
            self._nack(ssrc)
        self.packets += 1
        self.callback(name, seq, ts, h.marker, payload, False, h.audio_level)
        if apt is None and self.native_source is not None and ssrc not in self._native_ssrcs:
            self._take_natively(ssrc, h.payload_type, name)
        return True

    def _estimate(self, abs_send_time: int, arrival_ms: int, payload_size: int, ssrc: int) -> None:
        """aiortc's bandwidth estimate, and the REMB it sends when the estimate changes."""
        remb = self._vars[_ESTIMATOR_ATTR].add(abs_send_time=abs_send_time, arrival_time_ms=arrival_ms,
                                               payload_size=payload_size, ssrc=ssrc)
        if remb is not None:
            self._remb(*remb)

    def _remb(self, bitrate: int, ssrcs: list[int]) -> None:
        rtcp_ssrc = self._vars[_RTCP_SSRC_ATTR]
        if rtcp_ssrc is not None:
            drive(self.receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0,
                                                          fci=pack_remb_fci(bitrate, ssrcs))))

    def _nack(self, ssrc: int) -> None:
        self.nacks += 1
        drive(self.receiver._send_rtcp_nack(ssrc, sorted(self._vars[_NACK_ATTR].missing)))

    def _seen(self, ssrc: int) -> None:
        self._active[ssrc] = clock.current_datetime()

    def _take_natively(self, ssrc: int, payload_type: int, name: str) -> None:
        """From now on media/native_input.c takes this SSRC's packets (see Demux): its statistics and the
        receiver's NACK generator become the C ones, continuing from aiortc's, and its bandwidth estimate a
        C one (started afresh: aiortc's has seen a packet or two); both paths feed them."""
        self._native_ssrcs.add(ssrc)
        demux = getattr(self.receiver.transport, _DEMUX_ATTR, None)
        if demux is None:
            return
        from media import native
        r, v = self.receiver, self._vars
        stats = self._streams[ssrc]
        if not isinstance(stats, native.StreamStatistics):
            stats = native.StreamStatistics(stats._clockrate)
            stats.take(self._streams[ssrc])
            self._streams[ssrc] = stats
        nack = v[_NACK_ATTR]
        if nack is not None and not isinstance(nack, native.NackGenerator):
            nack = native.NackGenerator()
            nack.take(v[_NACK_ATTR])
            v[_NACK_ATTR] = nack
        estimator = v[_ESTIMATOR_ATTR]
        if estimator is not None and not isinstance(estimator, native.RemoteBitrateEstimator):
            estimator = v[_ESTIMATOR_ATTR] = native.RemoteBitrateEstimator()
        ids = getattr(r.transport._rtp_header_extensions_map, _EXT_IDS_ATTR)
        stream = native.Stream(ssrc=ssrc, payload_type=payload_type, video=self.native_source.kind == "video",
                               vp8=name == "VP8", abs_send_time_id=ids.abs_send_time, audio_level_id=ids.audio_level,
                               receiver=r, source=self.native_source, stats=stats, nack=nack,
                               on_level=v.get(_ON_LEVEL), estimator=estimator, on_remb=self._remb,
                               on_active=self._seen, on_nack=self._nack)
        if demux.add(stream):
            self.native.append(stream)
            self.native_source.native_in.append(stream)


def on_send_parameters(sender: RTCRtpSender, callback: Callable[[Any], None]) -> None:
    """Call `callback(parameters)` once the sender starts: the codec and RTX the leg negotiated."""
    original = sender.send

    async def send(parameters: Any) -> None:
        await original(parameters)
        callback(parameters)

    sender.send = send  # type: ignore[method-assign]


_PACKETS = "_RTCRtpSender__packet_count"
_OCTETS = "_RTCRtpSender__octet_count"
_RTP_TS = "_RTCRtpSender__rtp_timestamp"
_NTP_TS = "_RTCRtpSender__ntp_timestamp"


class DirectSend:
    """Protect and send an RTP packet on a sender's connection without a coroutine per packet:
    SRTP (libsrtp, C) and the nominated ICE pair's socket. The sender's own counters are kept,
    so its RTCP sender reports stay true."""

    def __init__(self, sender: RTCRtpSender):
        from aiortc.rtcdtlstransport import State
        self.sender = sender
        self._connected = State.CONNECTED
        # once known: (DTLS transport, ICE socket protocol, address, SRTP protect, its asyncio transport, socket)
        self._route: tuple[Any, Any, Any, Any, Any, Any] | None = None
        self._vars = vars(sender)  # its counters, updated in place (cheaper than getattr/setattr per packet)
        self.dropped = 0  # packets the kernel had no room for (a receiver's socket buffer full)

    def __call__(self, data: bytes, payload_octets: int, rtp_ts: int, count: bool = True) -> bool:
        route = self._route
        if route is None:
            found = native_route(self.sender)  # the same route the C outputs take
            if found is None:
                return False
            route = self._route = (found.dtls, found.protocol, found.remote, found.session.protect, found.transport,
                                   found.transport._sock)
        dtls, proto, addr, protect, transport, sock = route
        if dtls._state is not self._connected:
            return False
        if transport.is_closing():  # its socket is closed (or about to be): found again, or not, next time
            self._route = None
            return False
        if proto.transport is transport:  # asyncio's own: straight to the socket, without its Python layer
            try:
                sock.sendto(protect(data), addr)
            except (BlockingIOError, InterruptedError):
                self.dropped += 1  # UDP: a full buffer drops, as the link would; nothing queues behind it
            except OSError:
                return False
        else:  # a test wraps the protocol's transport (loss, delay): go through it
            proto.transport.sendto(protect(data), addr)
        if not count:
            return True
        v = self._vars
        v[_PACKETS] += 1
        v[_OCTETS] += payload_octets
        if v[_RTP_TS] != rtp_ts:  # a frame's packets share both: the clock is read once a frame
            v[_RTP_TS] = rtp_ts
            v[_NTP_TS] = _fast_ntp_time()
        return True


_SENDER_COUNTERS: tuple[str, str, str, str] = (_PACKETS, _OCTETS, _RTP_TS, _NTP_TS)

# media/native.h's srtp_fn: how the C calls libsrtp's srtp_protect and srtp_unprotect, by address
SRTP_FN_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
_srtp_addresses: tuple[int, int] | None = None


def check_libsrtp(ffi: Any, lib: Any) -> tuple[int, int]:
    """The addresses of srtp_protect and srtp_unprotect in a cffi binding of libsrtp, once both are
    checked to have the signature media/native.h calls them with (and their status to be an int);
    AiortcInternalsMoved otherwise."""
    names = ("srtp_protect", "srtp_unprotect")
    for name in names:
        fn = getattr(lib, name, None)
        found = ffi.typeof(fn).cname if fn is not None else None
        if found != SRTP_FN_SIGNATURE or ffi.sizeof("srtp_err_status_t") != ffi.sizeof("int"):
            raise AiortcInternalsMoved(f"pylibsrtp's {name} is {found}, not {SRTP_FN_SIGNATURE} (media/native.h)")
    protect, unprotect = (int(ffi.cast("uintptr_t", ffi.addressof(lib, name))) for name in names)
    return protect, unprotect


def libsrtp_functions() -> tuple[int, int]:
    """pylibsrtp's (pinned in pyproject.toml) srtp_protect and srtp_unprotect addresses, checked
    (check_libsrtp) before the C is handed either; every route is built with them."""
    global _srtp_addresses
    if _srtp_addresses is None:
        from pylibsrtp._binding import ffi, lib
        _srtp_addresses = check_libsrtp(ffi, lib)
    return _srtp_addresses


def native_route(sender: RTCRtpSender) -> SendRoute | None:
    """What media/native_output.c needs to protect and send on a sender's connection, as DirectSend
    does, or None until it is connected (and once its socket is closing). The SRTP session is the one
    aiortc keyed (pylibsrtp's cffi objects). The C keeps its own dup() of the fd, and drops the route
    when the transport closes."""
    from aiortc.rtcdtlstransport import State
    from pylibsrtp._binding import ffi
    dtls = sender.transport
    if dtls is None or dtls._state is not State.CONNECTED or dtls._tx_srtp is None:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or pair.protocol.transport is None or pair.protocol.transport.is_closing():
        return None
    transport = pair.protocol.transport
    sock = transport._sock
    session = dtls._tx_srtp
    host, port = pair.remote_addr[:2]
    protect, _ = libsrtp_functions()
    return SendRoute(dtls=dtls, connected=State.CONNECTED, protocol=pair.protocol, transport=transport,
                     fd=sock.fileno(), family=int(sock.family), remote=(host, port), session=session,
                     srtp=int(ffi.cast("uintptr_t", session._srtp[0])), protect=protect, sender_vars=vars(sender),
                     counter_keys=_SENDER_COUNTERS)


def answer_nacks(sender: RTCRtpSender, lookup: Callable[[int], bytes | None]) -> None:
    """Answer the receiver's NACKs from `lookup(sequence number)` (our own history) instead of
    aiortc's, which only knows packets it sent itself."""
    send = DirectSend(sender)

    async def _retransmit(sequence_number: int) -> None:
        data = lookup(sequence_number)
        if data is not None:
            send(data, 0, 0, count=False)

    sender._retransmit = _retransmit  # type: ignore[method-assign]


def answer_nacks_natively(sender: RTCRtpSender, resend: Callable[[int], bool]) -> None:
    """Answer the receiver's NACKs with `resend(sequence number)`: media/native_output.c's history,
    protected and sent in C."""

    async def _retransmit(sequence_number: int) -> None:
        resend(sequence_number)

    sender._retransmit = _retransmit  # type: ignore[method-assign]


_RX_BYTES = "_RTCDtlsTransport__rx_bytes"
_EXT_IDS_ATTR = "_HeaderExtensionsMap__ids"
_RX_PACKETS = "_RTCDtlsTransport__rx_packets"


def extension_ids(parameters: Any) -> Any:
    """The header extension ids a leg negotiated (`.mid`, `.abs_send_time`, `.audio_level`, None where
    not), read from its RTP parameters as aiortc reads them, so the URIs are aiortc's."""
    ids = HeaderExtensionsMap()
    ids.configure(parameters)
    return getattr(ids, _EXT_IDS_ATTR)


def drive(coro: Any) -> None:
    """Run a coroutine now, on this call's stack; if it waits for something (sending RTCP), let the
    loop resume it when that is done. aiortc's receive path is coroutines that almost never wait:
    running them here saves a queue, a task switch and a future per datagram."""
    import asyncio
    import logging

    def step(_: Any = None) -> None:
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception:  # a bug in a handler: logged, and the next datagram is handled as usual
            logging.getLogger("media.aiortc_hooks").exception("RTP handling failed")
            return
        if waiting is None:  # a bare yield (asyncio.sleep(0))
            asyncio.get_running_loop().call_soon(step)
        else:
            waiting.add_done_callback(step)

    step()


_DEMUX_ATTR = "_confctl_demux"


def receive_directly(pc: Any, native: bool = False) -> int:
    """Hand SRTP and SRTCP datagrams from the leg's sockets straight to the DTLS transport's handlers,
    instead of through aioice's queue and the transport's receive task (one await chain per
    datagram: the largest cost left on a forwarding node, measured with py-spy). STUN and DTLS
    still take aioice's path. With `native`, the sockets are read in C (media/native_input.c), which
    takes the media packets of streams ForwardOnly hands it and gives every other datagram to this
    Python path. Call once the leg is connected; returns how many sockets now do."""
    import pylibsrtp
    from aiortc.rtcdtlstransport import State
    from aiortc.rtp import is_rtcp
    done = 0
    seen: set[int] = set()
    for t in pc.getTransceivers():
        dtls = t.receiver.transport
        if dtls is None or id(dtls) in seen or dtls._rx_srtp is None:
            continue
        seen.add(id(dtls))

        ids = getattr(dtls._rtp_header_extensions_map, _EXT_IDS_ATTR)

        def srtp_in(data: bytes, dtls: Any = dtls) -> None:
            setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + len(data))
            setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
            try:
                if is_rtcp(data):
                    drive(dtls._handle_rtcp_data(dtls._rx_srtp.unprotect_rtcp(data)))
                    return
                data = dtls._rx_srtp.unprotect(data)
            except pylibsrtp.Error:
                return  # as aiortc: a datagram that does not authenticate is dropped
            rtp_in(data, clock.current_ms())

        def rtp_in(data: bytes, now: int, dtls: Any = dtls, abs_id: int | None = ids.abs_send_time,
                   level_id: int | None = ids.audio_level) -> None:
            h = parse_header(data, abs_id, level_id)
            if h is not None:
                fast = getattr(dtls._rtp_router.ssrc_table.get(h.ssrc), "_confctl_forward_only", None)
                if fast is not None and fast(data, h, now):
                    return
            drive(dtls._handle_rtp_data(data, arrival_time_ms=now))

        demux = None
        if native:
            from media.native import Demux
            demux = Demux(_native_receive_route(dtls), rtp_in)
            setattr(dtls, _DEMUX_ATTR, demux)
        for proto in dtls.transport._connection._protocols:  # this transport's sockets (ice_protocols)
            if getattr(proto, "_confctl_direct", False):
                continue
            original = proto.datagram_received

            def datagram_received(data: bytes, addr: Any, original: Any = original, srtp_in: Any = srtp_in,
                                  dtls: Any = dtls, connected: Any = State.CONNECTED) -> None:
                if data and 127 < data[0] < 192 and dtls._state is connected:
                    srtp_in(data)
                else:
                    original(data, addr)

            proto.datagram_received = datagram_received
            proto._confctl_direct = True
            if demux is not None:
                _read_natively(proto, demux)
            else:
                _drain_reads(proto.transport)
            done += 1
    return done


def _native_receive_route(dtls: Any) -> ReceiveRoute:
    """What media/native_input.c needs to unprotect a DTLS transport's SRTP: the SRTP session aiortc
    keyed, and the transport's received bytes and packets counted in place."""
    from aiortc.rtcdtlstransport import State
    from pylibsrtp._binding import ffi
    session = dtls._rx_srtp
    _, unprotect = libsrtp_functions()
    return ReceiveRoute(dtls=dtls, connected=State.CONNECTED, session=session,
                        srtp=int(ffi.cast("uintptr_t", session._srtp[0])), unprotect=unprotect, dtls_vars=vars(dtls),
                        counter_keys=(_RX_BYTES, _RX_PACKETS))


def _read_natively(protocol: Any, demux: Any) -> None:
    """The socket's reader is media/native_input.c's: every waiting datagram per readiness event, the
    media packets it was handed handled there, the rest given to `protocol.datagram_received`."""
    transport = protocol.transport
    loop, fd = transport._loop, transport._sock_fd
    loop._remove_reader(fd)
    loop._add_reader(fd, demux.read_ready, fd, transport, protocol)


MAX_DATAGRAM = 1500  # media/native.h MAX_PACKET: pylibsrtp's buffer; a longer datagram is no peer's packet
READS_PER_WAKEUP = 64  # bounded, so a flood cannot starve the loop's other work (native_input.c's too)


def _drain_reads(transport: Any) -> None:
    """Read every datagram waiting on the socket per readiness event, not one as asyncio does: a video
    frame's packets arrive back to back, and one loop pass per packet (epoll, select, handles) cost
    17 % of a forwarding node's CPU at 8 receivers (13.9 -> 11.5 % of a core, pinned A/B runs).
    Datagrams longer than MAX_DATAGRAM are dropped unread, as media/native_input.c drops them."""
    loop = transport._loop
    fd = transport._sock_fd
    sock = transport._sock
    size = MAX_DATAGRAM + 1  # one byte more: a longer datagram shows itself, and is dropped as the C drops it

    def read_ready() -> None:
        if transport._conn_lost:
            return
        recv = sock.recvfrom
        for _ in range(READS_PER_WAKEUP):
            try:
                data, addr = recv(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                transport._protocol.error_received(exc)
                return
            if len(data) <= MAX_DATAGRAM:
                transport._protocol.datagram_received(data, addr)

    loop._remove_reader(fd)
    loop._add_reader(fd, read_ready)


# -- ICE sockets a firewall can be told about (aioice 0.13) ----------------------------------------
# aioice binds one socket per interface on a random port and puts each interface's address in a
# candidate. A node behind a province firewall needs every socket in one range (--ice-ports) and,
# behind NAT or on a host with several interfaces, one address in its candidates (--advertise, as
# Janus's nat_1_1_mapping and mediasoup's announcedAddress): one socket on the wildcard address, its
# candidate carrying the advertised one. Remote `.local` (mDNS) candidates are ignored under a policy:
# resolving them opens port 5353 outside the range, and a browser on another network cannot be
# resolved that way anyway; its address arrives as a peer-reflexive candidate with its first check.
TESTED_AIOICE = ("0.13.",)


@dataclass(frozen=True)
class IceAddressing:
    advertise: str | None = None  # the only address in our candidates
    ports: UdpPorts = field(default_factory=UdpPorts)  # the range every ICE socket binds in, and its refusals


_ice_policy: IceAddressing | None = None  # this process's (the node's flags): aioice's sockets are per process


def use_ice_addressing(addressing: IceAddressing | None) -> IceAddressing | None:
    """Sets this process's ICE addressing (None: aioice's own); returns the previous one, to restore."""
    global _ice_policy
    import aioice.ice
    if not aioice.__version__.startswith(TESTED_AIOICE):
        raise AiortcInternalsMoved(f"ICE addressing is tested with aioice {TESTED_AIOICE}, found {aioice.__version__}")
    conn = aioice.ice.Connection
    if not getattr(conn, "_confctl_hooked", False):
        original_gather, original_remote = conn.get_component_candidates, conn.add_remote_candidate

        async def get_component_candidates(self: Any, component: int, addresses: list[str], timeout: int = 5) -> Any:
            policy = _ice_policy
            if policy is None:
                return await original_gather(self, component, addresses, timeout)
            return await _host_candidates(self, policy, component, addresses)

        async def add_remote_candidate(self: Any, candidate: Any) -> None:
            if _ice_policy is not None and candidate is not None and candidate.host.endswith(".local"):
                return  # see above: no mDNS socket; the browser's checks bring its address
            await original_remote(self, candidate)

        conn.get_component_candidates = get_component_candidates
        conn.add_remote_candidate = add_remote_candidate
        conn._confctl_hooked = True
    previous, _ice_policy = _ice_policy, addressing
    return previous


def ice_addressing() -> IceAddressing | None:
    return _ice_policy


async def _host_candidates(conn: Any, policy: IceAddressing, component: int, addresses: list[str]) -> list[Any]:
    import asyncio
    import socket

    from aioice import turn
    from aioice.candidate import Candidate, candidate_foundation, candidate_priority
    from aioice.ice import StunProtocol
    if conn.stun_server or conn.turn_server:
        raise ValueError("--ice-ports/--advertise gather host candidates only: no STUN or TURN server with them")
    if policy.advertise:  # one socket on every interface, its candidate the advertised address
        hosts = ["::" if ":" in policy.advertise else "0.0.0.0"]
    else:
        hosts = addresses
    loop = asyncio.get_running_loop()
    protocols: list[Any] = []
    try:
        for host in hosts:
            sock = policy.ports.bind_udp(host, "ICE for a leg or trunk")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
                _, protocol = await loop.create_datagram_endpoint(lambda: StunProtocol(conn), sock=sock)
            except BaseException:
                sock.close()  # bound but never handed to a transport: ours to close
                raise
            address = policy.advertise or host
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", address), component=component, transport="udp",
                priority=candidate_priority(component, "host"), host=address, port=sock.getsockname()[1], type="host")
            protocols.append(protocol)
    except BaseException:
        for p in protocols:
            p.transport.close()
        raise
    conn._protocols += protocols
    return [p.local_candidate for p in protocols]
