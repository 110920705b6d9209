"""The node's incoming packets in C (media/native_input.c, native_stats.c): aiortc's statistics and NACK
generator, fed the same sequences as aiortc's own, agree with them; whatever the C path does not take
is handed to Python unchanged."""
from __future__ import annotations

import random
from unittest import mock

from aiortc.rtcrtpreceiver import NackGenerator as AiortcNack, StreamStatistics as AiortcStats

from media import native


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
    demux = native.Demux((dtls, "connected", rx, int(ffi.cast("uintptr_t", rx._srtp[0])),
                          int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))), vars(dtls),
                          ("_rx_bytes", "_rx_packets")), lambda data, now: plain.append(data))
    receiver = types.SimpleNamespace(_enabled=True)
    heard: list[int] = []
    source = types.SimpleNamespace(_fast=(), sinks=[], request_keyframe=lambda: None,
                                   on_keyframe_header=lambda header: None)
    stats = native.StreamStatistics(48000)
    assert demux.add(native.Stream(1111, 111, False, False, None, 1, receiver, source, stats, native.NackGenerator(),
                                   heard.append, None, None, lambda ssrc: None, lambda ssrc: None))
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
    demux = native.Demux((dtls, "connected", rx, int(ffi.cast("uintptr_t", rx._srtp[0])),
                          int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))), vars(dtls),
                          ("_rx_bytes", "_rx_packets")), lambda data, now: None)
    from media.rtp_output import Negotiated
    out = native.Output("video", Negotiated(7, 96, "VP8", mid="1", mid_id=1, abs_send_time_id=2))
    out.switched(0.0)
    source = types.SimpleNamespace(_fast=(out,), sinks=[], request_keyframe=lambda: None,
                                   on_keyframe_header=lambda header: None)
    stats = native.StreamStatistics(90000)
    assert demux.add(native.Stream(4242, 96, True, True, 3, 1, types.SimpleNamespace(_enabled=True), source, stats,
                                   native.NackGenerator(), lambda level: None, native.RemoteBitrateEstimator(),
                                   lambda bitrate, ssrcs: None, lambda ssrc: None, lambda ssrc: None))
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
