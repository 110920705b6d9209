"""The node's incoming packets in C (media/native_input.c, native_stats.c): aiortc's statistics and NACK
generator, fed the same sequences as aiortc's own, agree with them; whatever the C path does not take
is handed to Python unchanged."""
from __future__ import annotations

import random
from unittest import mock

from aiortc.rtcrtpreceiver import NackGenerator as AiortcNack, StreamStatistics as AiortcStats

from media import native
from media.native_routes import ReceiveRoute


class Packet:
    def __init__(self, seq: int, ts: int):
        self.sequence_number, self.timestamp = seq, ts


def stream_of_packets(rng: random.Random, n: int) -> list[Packet]:
    """Loss, duplicates, reordering, a jump far ahead and wraps of the 16-bit counter."""
    seq, ts, out = rng.randrange(65536), rng.randrange(1 << 32), []
    for _ in range(n):
        seq = (seq + rng.choice([1] * 30 + [2, 3, 0, -1, -5, 40, 500, 20_000])) & 0xFFFF
        ts = (ts + rng.choice([0, 0, 3000, 2970])) & 0xFFFFFFFF
        out.append(Packet(seq, ts))
    return out


def test_statistics_agree_with_aiortcs_on_loss_reordering_and_wraps():
    rng = random.Random(3)
    ours, theirs = native.StreamStatistics(90000), AiortcStats(90000)
    for i, p in enumerate(stream_of_packets(rng, 30_000)):
        now = 1_700_000_000 + i * 0.0037 + rng.random() * 0.01  # both read the same clock
        with mock.patch("time.time", lambda: now):
            theirs.add(p)
        ours.add(p, now)
        if i % 97 == 0:  # a receiver report: fraction_lost starts the next interval
            assert ours.fraction_lost == theirs.fraction_lost, i
        assert (ours.packets_received, ours.packets_lost, ours.max_seq, ours.base_seq, ours.cycles, ours.jitter) == \
            (theirs.packets_received, theirs.packets_lost, theirs.max_seq, theirs.base_seq, theirs.cycles,
             theirs.jitter), i
    assert ours._clockrate == 90000 and ours.jitter > 0


def test_nack_generator_agrees_with_aiortcs():
    rng = random.Random(5)
    ours, theirs = native.NackGenerator(), AiortcNack()
    for i, p in enumerate(stream_of_packets(rng, 8_000)):
        assert ours.add(p) == theirs.add(p), i
        assert ours.missing == theirs.missing and ours.max_seq == theirs.max_seq, i


def test_the_c_objects_continue_from_aiortcs_state():
    rng = random.Random(9)
    packets = stream_of_packets(rng, 2_000)
    theirs_s, theirs_n = AiortcStats(48000), AiortcNack()
    for p in packets[:1000]:
        theirs_s.add(p)
        theirs_n.add(p)
    ours_s, ours_n = native.StreamStatistics(48000), native.NackGenerator()
    ours_s.take(theirs_s)
    ours_n.take(theirs_n)
    for p in packets[1000:]:
        theirs_s.add(p)
        ours_s.add(p)
        assert ours_n.add(p) == theirs_n.add(p)
    assert (ours_s.packets_received, ours_s.packets_lost, ours_s.fraction_lost, ours_n.missing) == \
        (theirs_s.packets_received, theirs_s.packets_lost, theirs_s.fraction_lost, theirs_n.missing)


class _Dtls:
    """What media/native_input.c reads of aiortc's RTCDtlsTransport."""

    def __init__(self, session):  # type: ignore[no-untyped-def]
        self._state, self._rx_srtp = "connected", session
        self._rx_bytes = self._rx_packets = 0


class _Protocol:
    def __init__(self) -> None:
        self.handed: list[tuple[bytes, tuple]] = []
        self.errors: list[OSError] = []

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.handed.append((data, addr))

    def error_received(self, exc: OSError) -> None:
        self.errors.append(exc)


def receive_route(dtls: _Dtls, rx) -> ReceiveRoute:  # type: ignore[no-untyped-def]
    """The route aiortc_hooks._native_receive_route builds, around a test transport and a real session."""
    from pylibsrtp._binding import ffi, lib
    return ReceiveRoute(dtls=dtls, connected="connected", session=rx, srtp=int(ffi.cast("uintptr_t", rx._srtp[0])),
                        unprotect=int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
                        dtls_vars=vars(dtls), counter_keys=("_rx_bytes", "_rx_packets"))


def test_the_socket_reader_takes_its_streams_and_hands_everything_else_to_python_unchanged():
    """Real libsrtp sessions and a real UDP socket: a registered stream's packets are unprotected,
    counted and forwarded in C; STUN, RTCP, an unknown SSRC and a source someone records are handed to
    Python as they arrived, from the address they came from; a forged packet is dropped."""
    import os
    import socket
    import types

    import pylibsrtp
    from aiortc.rtp import RtpPacket
    from pylibsrtp._binding import ffi, lib

    key = os.urandom(30)
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    dtls = _Dtls(rx)
    plain: list[bytes] = []
    demux = native.Demux(receive_route(dtls, rx), lambda data, now: plain.append(data))
    receiver = types.SimpleNamespace(_enabled=True)
    heard: list[int] = []
    source = types.SimpleNamespace(_fast=(), sinks=[], request_keyframe=lambda: None,
                                   on_keyframe_header=lambda header: None)
    stats = native.StreamStatistics(48000)
    assert demux.add(native.Stream(ssrc=1111, payload_type=111, video=False, vp8=False, abs_send_time_id=None,
                                   audio_level_id=1, receiver=receiver, source=source, stats=stats,
                                   nack=native.NackGenerator(), on_level=heard.append, estimator=None, on_remb=None,
                                   on_active=lambda ssrc: None, on_nack=lambda ssrc: None))
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.setblocking(False)
    protocol, transport = _Protocol(), types.SimpleNamespace(_conn_lost=0)

    def rtp(ssrc: int, seq: int, pt: int = 111) -> bytes:
        p = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=960 * seq, ssrc=ssrc, payload=b"opus" * 10)
        p.extensions.audio_level = (False, 30)
        from aiortc.rtp import HeaderExtensionsMap
        from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
        ids = HeaderExtensionsMap()
        ids.configure(RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(
            id=1, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level")]))
        return tx.protect(p.serialize(ids))

    def deliver(*datagrams: bytes) -> None:
        for d in datagrams:
            a.sendto(d, b.getsockname())
        demux.read_ready(b.fileno(), transport, protocol)

    deliver(*(rtp(1111, seq) for seq in range(10)))
    assert stats.packets_received == 10 and demux.packets == 10 and protocol.handed == []
    assert heard == [30] * 10 and dtls._rx_packets == 10  # the level reached the speaker election
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)
    other, rtcp = rtp(2222, 1), tx.protect_rtcp(bytes([0x80, 201, 0, 1]) + (1111).to_bytes(4, "big"))
    forged = bytearray(rtp(1111, 10))
    forged[-1] ^= 1
    deliver(stun, other, rtcp, bytes(forged))
    assert [d for d, _ in protocol.handed] == [stun, other, rtcp]  # unchanged, still protected
    assert {addr for _, addr in protocol.handed} == {a.getsockname()}
    assert demux.rejected == 1 and stats.packets_received == 10
    source.sinks.append(lambda frame: None)  # someone records it: aiortc's path reassembles frames
    late = rtp(1111, 11)
    deliver(late)
    assert protocol.handed[-1][0] == late and stats.packets_received == 10
    source.sinks.clear()
    deliver(rtp(1111, 12, pt=112))  # a payload type the stream was not registered with: to Python, unprotected
    assert RtpPacket.parse(plain[-1]).payload_type == 112
    transport._conn_lost = 1  # closed: nothing more is read
    deliver(rtp(1111, 13))
    assert demux.packets == 10
    a.close()
    b.close()


def test_malformed_packets_that_authenticate_are_dropped_without_harm():
    """Headers with random CSRC counts, extension profiles and lengths, padding and payload sizes,
    encrypted with the real session so they reach the C parser: none crashes the node or is handed on
    half-read; the well-formed ones are counted and forwarded, the rest dropped as aiortc drops them."""
    import os
    import socket
    import struct
    import types

    import pylibsrtp
    from pylibsrtp._binding import ffi, lib

    key = os.urandom(30)
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    dtls = _Dtls(rx)
    demux = native.Demux(receive_route(dtls, rx), lambda data, now: None)
    from media.rtp_output import Negotiated
    out = native.Output("video", Negotiated(7, 96, "VP8", mid="1", mid_id=1, abs_send_time_id=2))
    out.switched(0.0)
    source = types.SimpleNamespace(_fast=(out,), sinks=[], request_keyframe=lambda: None,
                                   on_keyframe_header=lambda header: None)
    stats = native.StreamStatistics(90000)
    assert demux.add(native.Stream(ssrc=4242, payload_type=96, video=True, vp8=True, abs_send_time_id=3,
                                   audio_level_id=1, receiver=types.SimpleNamespace(_enabled=True), source=source,
                                   stats=stats, nack=native.NackGenerator(), on_level=lambda level: None,
                                   estimator=native.RemoteBitrateEstimator(), on_remb=lambda bitrate, ssrcs: None,
                                   on_active=lambda ssrc: None, on_nack=lambda ssrc: None))
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.setblocking(False)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    protocol, transport = _Protocol(), types.SimpleNamespace(_conn_lost=0)
    rng = random.Random(11)
    sent = 0
    for i in range(1500):
        csrc, ext, pad = rng.choice([0, 0, 0, 1, 15]), rng.random() < 0.7, rng.random() < 0.2
        header = struct.pack("!BBHII", 0x80 | (0x20 if pad else 0) | (0x10 if ext else 0) | csrc, 96, i, 3000 * i, 4242)
        body = os.urandom(4 * csrc)
        if ext:
            words = rng.choice([0, 1, 2, 255])
            body += struct.pack("!HH", rng.choice([0xBEDE, 0x1000, 0x1234]), words) + os.urandom(4 * rng.randrange(3))
        body += os.urandom(rng.choice([0, 1, 20, 1100, 1400, 3000, 60_000]))
        if pad:
            body += bytes([rng.randrange(256)])
        packet = header + body
        if len(packet) > 1500 - 144:  # pylibsrtp's own buffer; the C side takes up to 64 KiB
            continue
        try:
            protected = tx.protect(packet)
        except pylibsrtp.Error:  # libsrtp itself refuses to protect a header it cannot walk
            continue
        a.sendto(protected, b.getsockname())
        sent += 1
        if i % 32 == 31:
            demux.read_ready(b.fileno(), transport, protocol)
    demux.read_ready(b.fileno(), transport, protocol)
    print(f"{sent} sent, {demux.packets} well-formed, {out.packets} forwarded")
    assert 0 < stats.packets_received == demux.packets < sent and demux.rejected == 0
    assert out.packets > 0 and protocol.handed == []
    a.close()
    b.close()


def test_the_bandwidth_estimate_agrees_with_aiortcs_packet_for_packet():
    """Arrivals of a 2 Mbit/s camera (30 fps, bursts of packets per frame) with jitter, a congested
    stretch where queueing delay grows (overuse: the estimate drops), recovery, reordering, and a
    second SSRC: every packet gives aiortc's RemoteBitrateEstimator and the C one the same answer."""
    from aiortc.rate import RemoteBitrateEstimator

    rng = random.Random(21)
    ours, theirs = native.RemoteBitrateEstimator(), RemoteBitrateEstimator()
    sent_s, arrival, queue, rembs = 1000.0, 5_000_000.0, 0.0, []
    for frame in range(30 * 60):
        congested = 600 <= frame < 900
        sent_s += 1 / 30
        for i in range(rng.choice([6, 7, 8])):
            queue = max(0.0, queue + (4.0 if congested else -2.0))  # ms of queueing delay building or draining
            arrival = max(arrival, 5_000_000 + sent_s * 1000 + queue + rng.random() * 3)
            abs_time = int((sent_s + i * 0.0004) * 262144) & 0xFFFFFF
            size, ssrc = rng.randrange(900, 1200), 1111 if frame % 50 else 2222
            if rng.random() < 0.01:
                abs_time = (abs_time - 2000) & 0xFFFFFF  # reordered: sent earlier than the last
            args = dict(arrival_time_ms=int(arrival), abs_send_time=abs_time, payload_size=size, ssrc=ssrc)
            expected = theirs.add(**args)
            assert ours.add(**args) == expected, (frame, i)
            if expected is not None:
                rembs.append((frame, expected[0]))
    before = [b for f, b in rembs if f < 600]
    during = [b for f, b in rembs if 600 <= f < 900]
    assert min(during) < 0.7 * before[-1] < rembs[-1][1]  # it fell with the congestion and recovered


class _Leg:
    """A leg's receive side as media/native_input.c sees it: real libsrtp sessions (what the peer
    protects with, what the demux unprotects with) and a real UDP socket pair."""

    def __init__(self, plain=None) -> None:  # type: ignore[no-untyped-def]
        import os
        import socket
        import types

        import pylibsrtp
        from pylibsrtp._binding import ffi, lib

        key = os.urandom(30)
        self.tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        rx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.dtls = _Dtls(rx)
        self.plain: list[bytes] = []
        self.demux = native.Demux(receive_route(self.dtls, rx), plain or (lambda data, now: self.plain.append(data)))
        self.a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.a.bind(("127.0.0.1", 0))
        self.b.bind(("127.0.0.1", 0))
        self.b.setblocking(False)
        self.protocol, self.transport = _Protocol(), types.SimpleNamespace(_conn_lost=0)

    def stream(self, ssrc: int, pt: int, video: bool, out=None, abs_id=None, level_id=None,  # type: ignore[no-untyped-def]
               on_level=None, estimator=None, on_remb=None) -> native.Stream:
        import types
        source = types.SimpleNamespace(_fast=(out,) if out is not None else (), sinks=[],
                                       request_keyframe=lambda: None, on_keyframe_header=lambda header: None)
        st = native.Stream(ssrc=ssrc, payload_type=pt, video=video, vp8=video, abs_send_time_id=abs_id,
                           audio_level_id=level_id, receiver=types.SimpleNamespace(_enabled=True), source=source,
                           stats=native.StreamStatistics(90000 if video else 48000), nack=native.NackGenerator(),
                           on_level=on_level, estimator=estimator, on_remb=on_remb, on_active=lambda ssrc: None,
                           on_nack=lambda ssrc: None)
        assert self.demux.add(st)
        return st

    def protect(self, packet: bytes) -> bytes:
        """SRTP as the peer's libsrtp makes it, for packets longer than pylibsrtp's own buffer too."""
        from pylibsrtp._binding import ffi, lib
        buf = ffi.new("char[]", len(packet) + 144)
        buf[0:len(packet)] = packet
        n = ffi.new("int *", len(packet))
        assert lib.srtp_protect(self.tx._srtp[0], buf, n) == 0
        return ffi.buffer(buf)[0:n[0]]

    def send(self, *datagrams: bytes) -> None:
        for d in datagrams:
            self.a.sendto(d, self.b.getsockname())

    def read(self) -> None:
        self.demux.read_ready(self.b.fileno(), self.transport, self.protocol)

    def close(self) -> None:
        self.a.close()
        self.b.close()


def _rtp(ssrc: int, seq: int, payload: bytes, pt: int = 111, extension: bytes = b"", marker: bool = False) -> bytes:
    import struct
    return struct.pack("!BBHII", 0x90 if extension else 0x80, pt | (0x80 if marker else 0), seq, 960 * seq,
                       ssrc) + extension + payload


def test_an_extension_element_with_id_0_is_padding_not_a_level_or_send_time():
    """A stream that negotiated neither audio level nor abs-send-time: one-byte elements whose ID is 0
    are padding (RFC 8285), not read as either - in C and in the Python specification (issue 22, 2)."""
    from media.rtp_input import parse_header
    leg, heard, rembs = _Leg(), [], []
    leg.stream(1111, 111, False, on_level=heard.append, estimator=native.RemoteBitrateEstimator(),
               on_remb=lambda bitrate, ssrcs: rembs.append(bitrate))
    level_0 = b"\xbe\xde\x00\x01" + b"\x01\x1e\x00\x00"  # ID 0 "length 2": level 30 if misread
    send_time_0 = b"\xbe\xde\x00\x01" + b"\x02\x12\x34\x56"  # ID 0 "length 3": a send time if misread
    for seq in range(200):
        extension = level_0 if seq % 2 else send_time_0
        leg.send(leg.tx.protect(_rtp(1111, seq, b"opus" * 10, extension=extension)))
        if seq % 32 == 31:
            leg.read()
    leg.read()
    assert leg.demux.packets == 200 and heard == [] and rembs == []
    for extension in (level_0, send_time_0):
        packet = _rtp(1111, 1, b"opus", extension=extension)
        for ids in ((None, None), (0, 0)):
            h = parse_header(packet, *ids)
            assert h is not None and (h.abs_send_time, h.audio_level) == (None, None)
            assert native.parse_header(packet, *ids) == tuple(h)
    leg.close()


def test_a_datagram_longer_than_1500_bytes_is_dropped_before_unprotect_and_not_handed_to_python():
    """Longer than any packet a peer sends (and pylibsrtp's buffer): not unprotected, even when it would
    authenticate, and not handed to Python's path either; 1500 bytes still are (issue 22, 3)."""
    leg = _Leg()
    out = native.Output("audio", __import__("media.rtp_output", fromlist=["Negotiated"]).Negotiated(5, 111, "opus"))
    out.switched(0.0)
    st = leg.stream(1111, 111, False, out=out)
    authentic_long = leg.protect(_rtp(1111, 1, bytes(1490)))  # 1502 bytes of SRTP that authenticates
    unknown_long = _rtp(2222, 1, bytes(3000))
    stun_long = b"\x00\x01\x0f\xa0\x21\x12\xa4\x42" + bytes(4012)
    at_limit = _rtp(2222, 2, bytes(1500 - 12))
    assert len(authentic_long) > 1500 and len(at_limit) == 1500
    leg.send(authentic_long, unknown_long, stun_long, at_limit, leg.tx.protect(_rtp(1111, 2, b"opus")))
    leg.read()
    assert [d for d, _ in leg.protocol.handed] == [at_limit]
    assert st.packets == 1 and out.last_seq == 2  # only the packet of a sane size was taken and forwarded
    assert leg.demux.oversized == 3 and leg.demux.rejected == 0 and leg.dtls._rx_packets == 1
    leg.close()


async def test_pythons_socket_reader_drops_what_the_c_drops():
    """Without the C reader (aiortc_hooks._drain_reads) a datagram over 1500 bytes is dropped too:
    pylibsrtp would raise on it (issue 22, 3)."""
    import asyncio
    import socket

    from media.aiortc_hooks import _drain_reads

    got: list[bytes] = []

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def, override]
            got.append(data)

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
    _drain_reads(transport)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for size in (1501, 1500, 9000, 20):
        peer.sendto(bytes([0x80]) * size, transport.get_extra_info("sockname"))
    import time
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert [len(d) for d in got] == [1500, 20]
    transport.close()
    peer.close()


def test_each_demux_reads_into_its_own_buffer():
    """A callback of one leg's packet (the speaker election's level) runs while another leg's datagrams
    are read, and its own leg's reader is called again: the packet being handled is not overwritten,
    and what is forwarded is its own payload (issue 22, 5)."""
    from media.rtp_output import Negotiated
    leg_a, leg_b = _Leg(), _Leg()
    out = native.Output("audio", Negotiated(5, 111, "opus"))
    out.switched(0.0)
    level = b"\xbe\xde\x00\x01" + b"\x10\x1e\x00\x00"  # audio level (id 1) 30

    def on_level(value: int) -> None:  # reads the other leg, and its own, meanwhile
        leg_b.read()
        leg_a.read()

    leg_a.stream(1111, 111, False, out=out, level_id=1, on_level=on_level)
    leg_b.send(_rtp(3333, 1, b"B" * 40))  # another stream: handed to Python's path on leg B
    leg_a.send(leg_a.tx.protect(_rtp(1111, 7, b"A" * 40, extension=level)),
               leg_a.tx.protect(_rtp(1111, 8, b"a" * 40, extension=level)))
    leg_a.read()
    first = out.retransmission(out.last_seq - 1)
    assert first is not None and first.endswith(b"A" * 40)
    assert out.retransmission(out.last_seq).endswith(b"a" * 40)  # the re-entrant read left it for the loop
    assert [d for d, _ in leg_b.protocol.handed] == [_rtp(3333, 1, b"B" * 40)]
    leg_a.close()
    leg_b.close()


def test_a_vp8_descriptor_longer_than_its_payload_counts_no_bytes():
    """`80 e0`: the descriptor announces a picture ID, TL0PICIDX and TID the payload does not have.
    The camera's byte count does not wrap around (issue 22, 7)."""
    from media.rtp_output import Negotiated
    leg = _Leg()
    out = native.Output("video", Negotiated(7, 96, "VP8"))
    out.switched(0.0)
    st = leg.stream(4242, 96, True, out=out)
    for seq, payload in enumerate((b"\x80\xe0", b"\x90\xc0\x81", b"\x90\x80\x80", b"\x80")):
        leg.send(leg.tx.protect(_rtp(4242, seq, payload, pt=96, marker=True)))
    leg.read()
    assert st.packets == 4 and st.frames == 4 and st.bytes == 0
    leg.close()


def test_statistics_refuse_a_time_no_clock_can_count():
    """`now` is converted to clock ticks as a 64-bit integer: a time for which that overflows, or not a
    number, is refused instead of converted (undefined in C) (issue 22, 7)."""
    import math
    import types

    import pytest
    stats = native.StreamStatistics(90000)
    p = types.SimpleNamespace(sequence_number=1, timestamp=2)
    for now in (1e300, -1e300, math.inf, math.nan, 2.0**63 / 90000):
        with pytest.raises(ValueError):
            stats.add(p, now)
    assert stats.packets_received == 0
    stats.add(p, 1_700_000_000.0)
    assert stats.packets_received == 1
    for bad in (types.SimpleNamespace(sequence_number=70000, timestamp=2),
                types.SimpleNamespace(sequence_number=1, timestamp=-1)):
        with pytest.raises(ValueError):
            stats.add(bad, 1_700_000_000.0)
    with pytest.raises(ValueError):
        native.StreamStatistics(0)
    estimator = native.RemoteBitrateEstimator()
    for args in (dict(arrival_time_ms=2**62), dict(arrival_time_ms=-1), dict(payload_size=2**40)):
        with pytest.raises(ValueError):
            estimator.add(**{**dict(arrival_time_ms=1000, abs_send_time=1, payload_size=1000, ssrc=1), **args})
