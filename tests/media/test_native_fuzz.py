"""Seeded fuzzing of media.native's entry points (issue 22, 9): random and mutated RTP - CSRC counts,
extension blocks of both forms, padding, VP8 descriptors, truncation at every byte - read, rewritten and
received through real SRTP by the C, each result held against the Python specification where there is
one (media/rtp_input.py, media/rtp_output.py), and arbitrary arguments thrown at every object. Nothing
may crash; `make test-asan` runs this under AddressSanitizer and UBSan for longer.

Bounded in time, reproducible by seed: NATIVE_FUZZ_SEED (default 22) and NATIVE_FUZZ_SECONDS (default 3,
shared by the tests below). Case i of a test draws from Random(f"{seed}:{test}:{i}"), so a failure
names the one case to replay."""
from __future__ import annotations

import inspect
import itertools
import math
import os
import random
import socket
import struct
import time
import types
from collections import Counter
from typing import Any, Callable, Iterator

import pylibsrtp
import pytest
from pylibsrtp._binding import ffi, lib

from media import native
from media.native_routes import ReceiveRoute, SendRoute
from media.rtp_input import parse_header
from media.rtp_output import Negotiated, RtpOutput, vp8_descriptor

SEED = int(os.environ.get("NATIVE_FUZZ_SEED", "22"))
SECONDS = float(os.environ.get("NATIVE_FUZZ_SECONDS", "3"))
STREAM_KEYWORDS = tuple(inspect.signature(native.Stream).parameters)  # its text signature: keywords only


def cases(name: str, share: float) -> Iterator[tuple[int, random.Random]]:
    """(i, its generator) until this test's share of the time is spent; reports how many it ran."""
    deadline = time.monotonic() + SECONDS * share
    i = 0
    try:
        for i in itertools.count():
            if time.monotonic() > deadline and i:
                return
            yield i, random.Random(f"{SEED}:{name}:{i}")
    finally:
        print(f"{name}: seed {SEED}, {i} cases in {SECONDS * share:.1f} s")


# -- packets ---------------------------------------------------------------------------------------
def vp8_payload(rng: random.Random) -> bytes:
    """A VP8 payload descriptor (RFC 7741) with random flags, then a VP8 header's first bytes."""
    x = rng.random() < 0.8
    b0 = (0x80 if x else 0) | (0x10 if rng.random() < 0.5 else 0) | rng.choice([0, 0, 0, rng.randrange(8)]) \
        | (rng.randrange(2) << 5)
    out = [b0]
    if x:
        ext = rng.choice([0x80, 0x80, 0xC0, 0xE0, 0xF0, 0x00, rng.randrange(256)])
        out.append(ext)
        if ext & 0x80:
            out += [0x80 | rng.randrange(128), rng.randrange(256)] if rng.random() < 0.8 else [rng.randrange(128)]
        if ext & 0x40:
            out.append(rng.randrange(256))
        if ext & 0x30:
            out.append(rng.randrange(256))
    out.append(rng.choice([0x00, 0x01, rng.randrange(256)]))  # the P bit: a key frame or not
    return bytes(out) + rng.randbytes(rng.choice([0, 1, 5, 40, 300, 1100, 1460]))


def extension_block(rng: random.Random) -> bytes:
    """An RFC 8285 block: one- or two-byte elements, padding, ID 0 and 15, lengths past the block."""
    profile = rng.choice([0xBEDE, 0xBEDE, 0x1000, 0x100F, rng.randrange(65536)])
    body = b""
    for _ in range(rng.randrange(6)):
        kind = rng.random()
        if kind < 0.15:
            body += b"\x00" * rng.randrange(1, 4)
        elif profile == 0xBEDE:
            ext_id = rng.choice([1, 2, 3, 4, 14, 0, 15, rng.randrange(16)])
            length = rng.choice([1, 3, rng.randrange(1, 17)])
            body += bytes([ext_id << 4 | (length - 1)]) + rng.randbytes(rng.choice([length, length, rng.randrange(17)]))
        else:
            length = rng.choice([1, 3, rng.randrange(256)])
            body += bytes([rng.choice([1, 2, 3, 0, 255, rng.randrange(256)]), length]) + rng.randbytes(min(length, 40))
    words = (len(body) + 3) // 4
    body += bytes(4 * words - len(body))
    declared = rng.choice([words, words, words, words + 1, max(0, words - 1), rng.randrange(65536)])
    return struct.pack("!HH", profile, declared & 0xFFFF) + body


def rtp_packet(rng: random.Random, ssrc: int | None = None, pt: int | None = None, video: bool = True) -> bytes:
    """A random RTP packet, mostly well formed, then perhaps mutated or cut short."""
    csrc = rng.choice([0, 0, 0, 1, 2, 15])
    ext = rng.random() < 0.6
    pad = rng.random() < 0.15
    version = 2 if rng.random() < 0.95 else rng.randrange(4)
    b0 = version << 6 | (0x20 if pad else 0) | (0x10 if ext else 0) | csrc
    b1 = (0x80 if rng.random() < 0.3 else 0) | (pt if pt is not None else rng.randrange(128))
    header = struct.pack("!BBHII", b0, b1, rng.randrange(65536), rng.randrange(1 << 32),
                         ssrc if ssrc is not None else rng.randrange(1 << 32))
    data = header + rng.randbytes(4 * csrc if rng.random() < 0.9 else rng.randrange(60))
    if ext:
        data += extension_block(rng)
    data += vp8_payload(rng) if video else rng.randbytes(rng.choice([0, 1, 10, 160, 1400]))
    if pad:
        n = rng.choice([1, 4, rng.randrange(256)])
        data += bytes(max(n - 1, 0)) + bytes([n if rng.random() < 0.8 else rng.randrange(256)])
    return mutate(rng, data)


def mutate(rng: random.Random, data: bytes) -> bytes:
    r = rng.random()
    if r < 0.6 or not data:
        return data
    b = bytearray(data)
    if r < 0.8:
        for _ in range(rng.randrange(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.5:
            b[0] = b[0] & 0x3F | 0x80  # still version 2
    elif r < 0.95:
        del b[rng.randrange(len(b) + 1):]
    else:
        b += rng.randbytes(rng.randrange(1, 20))
    return bytes(b)


EXTENSION_IDS = [None, None, 0, 1, 2, 3, 4, 14, 15, 16, 255, 256, -1, 2**40]


# -- reading ---------------------------------------------------------------------------------------
def test_headers_and_descriptors_read_the_same_in_c_and_python():
    for i, rng in cases("read", 0.25):
        data = rtp_packet(rng)
        ids = (rng.choice(EXTENSION_IDS), rng.choice(EXTENSION_IDS))
        ends = range(len(data) + 1) if rng.random() < 0.05 else [len(data)]  # now and then every truncation
        for end in ends:
            h = parse_header(data[:end], *ids)
            assert native.parse_header(data[:end], *ids) == (tuple(h) if h else None), (i, end)
            payload = data[h.start:h.end] if h else data[12:end]
            assert native.vp8_descriptor(payload) == vp8_descriptor(payload), (i, end)


# -- rewriting -------------------------------------------------------------------------------------
def negotiated(rng: random.Random, video: bool) -> Negotiated:
    rtx = rng.random() < 0.5
    return Negotiated(rng.randrange(1 << 32), rng.randrange(128), "VP8" if video else "opus",
                      rng.randrange(128) if rtx else None, rng.randrange(1 << 32) if rtx else None,
                      mid=rng.choice([None, "0", "1", "video", "x" * 16, "x" * 17]),
                      mid_id=rng.choice(EXTENSION_IDS[:10]), abs_send_time_id=rng.choice(EXTENSION_IDS[:10]),
                      audio_level_id=rng.choice(EXTENSION_IDS[:10]))


def outcome(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except (ValueError, TypeError) as exc:
        return type(exc)


def test_outputs_write_what_the_specification_writes():
    for i, rng in cases("rewrite", 0.25):
        video = rng.random() < 0.7
        n = negotiated(rng, video)
        kind = "video" if video else "audio"
        spec, ours = RtpOutput(kind, n), native.Output(kind, n)
        seq, ts, now = rng.randrange(65536), rng.randrange(1 << 32), 0.0
        for j in range(rng.randrange(1, 60)):
            now += rng.random()
            if rng.random() < 0.1:
                spec.switched(now)
                ours.switched(now)
                seq, ts = rng.randrange(65536), rng.randrange(1 << 32)
            seq = (seq + rng.choice([1, 1, 1, 2, 0, -3, 1500, -1500])) & 0xFFFF
            ts = (ts + rng.choice([0, 3000])) & 0xFFFFFFFF
            payload = vp8_payload(rng) if video else rng.randbytes(rng.choice([0, 3, 100, 1490]))
            payload = mutate(rng, payload)
            desc = None
            if rng.random() < 0.3:
                desc = (rng.choice([None, 0, 2, 3, len(payload) - 2, len(payload) - 1, len(payload), -1, 2**40]),
                        rng.random() < 0.5)
            sent = rng.choice([None, rng.randrange(1 << 24), -5, 2**30, 2**70])
            level = rng.choice([None, rng.randrange(128), -1, 300, 2**65 + 3])
            marker = rng.random() < 0.3
            a = outcome(lambda: spec.packet(seq, ts, marker, payload, desc, sent, level))
            b = outcome(lambda: ours.packet(seq, ts, marker, payload, desc, sent, level))
            assert a == b, (i, j)
            assert spec.wants_keyframe(now) == ours.wants_keyframe(now), (i, j)
            if rng.random() < 0.2:
                lost = rng.choice([spec.last_seq or 0, (spec.last_seq or 0) - rng.randrange(300), -1, 65536])
                assert spec.retransmission(lost) == ours.retransmission(lost), (i, j)
        assert (spec.last_seq, spec.last_ts, spec.last_pic, spec.packets, spec.octets, spec.frames,
                spec.retransmitted, spec.need_keyframe) == \
            (ours.last_seq, ours.last_ts, ours.last_pic, ours.packets, ours.octets, ours.frames,
             ours.retransmitted, ours.need_keyframe), i


# -- receiving ------------------------------------------------------------------------------------
def srtp_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    key = os.urandom(30)
    return (pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)),
            pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)))


def protect(session: pylibsrtp.Session, packet: bytes) -> bytes | None:
    """As the peer's libsrtp protects it (any length), or None where libsrtp refuses the header."""
    buf = ffi.new("char[]", len(packet) + 144)
    buf[0:len(packet)] = packet
    n = ffi.new("int *", len(packet))
    if lib.srtp_protect(session._srtp[0], buf, n) != 0:
        return None
    return ffi.buffer(buf)[0:n[0]]


class Dtls:
    def __init__(self, session: pylibsrtp.Session):
        self._state, self._rx_srtp = "connected", session
        self._rx_bytes = self._rx_packets = 0


class Protocol:
    def __init__(self) -> None:
        self.handed: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.handed.append(data)

    def error_received(self, exc: OSError) -> None:
        raise exc


def test_the_socket_reader_takes_fuzzed_srtp_as_the_specification_reads_it():
    """Real SRTP over a real socket into a Demux: each datagram is dropped, handed to Python, or counted
    and forwarded exactly as parse_header, vp8_descriptor and RtpOutput say it should be."""
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    b.setblocking(False)
    to = b.getsockname()
    transport = types.SimpleNamespace(_conn_lost=0)
    seen: Counter[str] = Counter()
    try:
        for i, rng in cases("receive", 0.35):
            if i % 200 == 0:  # a fresh leg now and then: its own session, stream and ids
                tx, rx = srtp_pair()
                dtls, protocol, plain, levels = Dtls(rx), Protocol(), [], []
                demux = native.Demux(ReceiveRoute(dtls, "connected", rx, int(ffi.cast("uintptr_t", rx._srtp[0])),
                                                  int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
                                                  vars(dtls), ("_rx_bytes", "_rx_packets")),
                                     lambda data, now: plain.append(data))
                video = rng.random() < 0.7
                ssrc, pt = rng.randrange(1 << 32), rng.randrange(96, 128)
                abs_id, level_id = rng.choice(EXTENSION_IDS[:10]), rng.choice(EXTENSION_IDS[:10])
                n = Negotiated(rng.randrange(1 << 32), 100, "VP8" if video else "opus", mid="m", mid_id=5,
                               audio_level_id=6)
                kind = "video" if video else "audio"
                out, spec = native.Output(kind, n), RtpOutput(kind, n)
                out.switched(0.0)
                spec.switched(0.0)
                source = types.SimpleNamespace(_fast=(out,), sinks=[], request_keyframe=lambda: None,
                                               on_keyframe_header=lambda header: None)
                stream = native.Stream(ssrc=ssrc, payload_type=pt, video=video, vp8=video, abs_send_time_id=abs_id,
                                       audio_level_id=level_id, receiver=types.SimpleNamespace(_enabled=True),
                                       source=source, stats=native.StreamStatistics(90000),
                                       nack=native.NackGenerator(), on_level=levels.append,
                                       estimator=native.RemoteBitrateEstimator(), on_remb=lambda bitrate, ssrcs: None,
                                       on_active=lambda s: None, on_nack=lambda s: None)
                assert demux.add(stream)
                expect_bytes = expect_packets = 0
                next_seq = rng.randrange(65536)
            packet = rtp_packet(rng, ssrc=ssrc if rng.random() < 0.9 else None,
                                pt=pt if rng.random() < 0.9 else None, video=video)
            if len(packet) >= 4 and rng.random() < 0.95:  # in order, mostly, or libsrtp refuses it as a replay
                next_seq = (next_seq + rng.choice([1, 1, 1, 2, 5])) & 0xFFFF
                packet = packet[:2] + next_seq.to_bytes(2, "big") + packet[4:]
            datagram = protect(tx, packet) if rng.random() < 0.95 else packet
            if datagram is None or len(datagram) > 1600:
                continue
            if rng.random() < 0.03:
                datagram = mutate(rng, datagram)  # no longer authenticates (or not SRTP at all)
            a.sendto(datagram, to)
            before = (demux.packets, demux.handed_back, demux.rejected, demux.oversized, len(plain), len(levels))
            demux.read_ready(b.fileno(), transport, protocol)
            after = (demux.packets, demux.handed_back, demux.rejected, demux.oversized, len(plain), len(levels))
            delta = tuple(y - x for x, y in zip(before, after))
            if len(datagram) > 1500:
                assert delta == (0, 0, 0, 1, 0, 0), i
                seen["oversized"] += 1
                continue
            mine = (len(datagram) >= 12 and 127 < datagram[0] < 192 and not 192 <= datagram[1] <= 208
                    and int.from_bytes(datagram[8:12], "big") == ssrc)
            if not mine:  # not this stream's SRTP: to Python, unchanged
                assert delta == (0, 1, 0, 0, 0, 0) and protocol.handed[-1] == datagram, i
                seen["handed back"] += 1
                continue
            if delta[2]:  # did not authenticate: dropped
                assert delta == (0, 0, 1, 0, 0, 0), i
                seen["rejected"] += 1
                continue
            h = parse_header(packet, abs_id, level_id)
            if h is None:
                assert delta == (0, 0, 0, 0, 0, 0), i  # malformed after all: dropped, as aiortc drops it
                seen["malformed"] += 1
                continue
            if h.payload_type != pt:
                assert delta == (0, 1, 0, 0, 1, 0) and plain[-1] == packet, i
                seen["another payload type"] += 1
                continue
            seen["taken"] += 1
            assert delta == (1, 0, 0, 0, 0, 1 if h.audio_level is not None else 0), i
            if h.audio_level is not None:
                assert levels[-1] == h.audio_level, i
            payload = packet[h.start:h.end]
            expect_packets += 1
            expect_bytes += len(payload) - (vp8_descriptor(payload)[0] if video else 0)
            assert (stream.packets, stream.bytes) == (expect_packets, expect_bytes), i
            try:
                sent = spec.packet(h.seq, h.ts, h.marker, payload, None, None, h.audio_level)
            except ValueError:  # too long with our extensions: the C does not send it either
                sent = None
            if sent is not None:
                assert out.retransmission(int.from_bytes(sent[2:4], "big")) == sent, i
            assert (out.packets, out.last_seq, out.need_keyframe) == (spec.packets, spec.last_seq,
                                                                       spec.need_keyframe), i
    finally:
        a.close()
        b.close()
        print(f"receive: {dict(seen)}")


# -- any argument -----------------------------------------------------------------------------------
class Weird:
    """An object whose conversions raise."""

    def __index__(self) -> int:
        raise RuntimeError("no index")

    def __bool__(self) -> bool:
        raise RuntimeError("no truth")

    def __float__(self) -> float:
        raise RuntimeError("no float")


def anything(rng: random.Random) -> Any:
    return rng.choice([None, 0, 1, -1, 2**31 - 1, 2**31, 2**32 + 7, 2**63, -2**63 - 1, 2**100, 0.5, -1e300, 1e300,
                       math.nan, math.inf, "", "video", b"", b"\x90\xc0\x81", bytes(2000), (), (1,), (None, True),
                       [], {}, Weird(), object(), rng.randrange(-70000, 70000), rng.randbytes(rng.randrange(40))])


def test_arbitrary_arguments_never_crash_the_c():
    """Every entry point, with arguments of every type and size: a result or an exception, never a
    crash (under `make test-asan`: never a sanitizer report either)."""
    node, viewer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    node.setblocking(False)
    viewer.setblocking(False)
    tx, rx = srtp_pair()
    protect_at = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    unprotect_at = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect")))
    own = types.SimpleNamespace(_closing=False, sendto=lambda data, addr: None)
    calls = 0
    try:
        for i, rng in cases("arguments", 0.15):
            x = lambda: anything(rng)  # noqa: E731
            n = Negotiated(*(x() for _ in range(2)), "VP8", *(x() for _ in range(6)))
            fd = rng.choice([node.fileno(), -1, 10**6, 2**31])
            the_route = rng.choice([
                None, x(), (x(),) * 12,
                SendRoute(types.SimpleNamespace(_state="connected", _tx_srtp=tx), "connected",
                 types.SimpleNamespace(transport=rng.choice([own, None, x()])), own, fd,
                 rng.choice([int(socket.AF_UNIX), int(socket.AF_INET), int(socket.AF_INET6), x()]),
                 rng.choice([None, ("127.0.0.1", 9), ("::1", 9), ("fe80::1%lo", 9), ("x", 2**20), x()]), tx,
                 rng.choice([int(ffi.cast("uintptr_t", tx._srtp[0])), 0]), rng.choice([protect_at, 0]),
                 rng.choice([{}, dict.fromkeys("prnt", 0), x()]), rng.choice([tuple("prnt"), ("p",), x()]))])
            objects: list[Any] = []
            steps = [
                lambda: objects.append(native.Output(rng.choice(["video", "audio", x()]), n)),
                lambda: objects.append(native.Output.__new__(native.Output)),
                lambda: objects[-1].set_router(lambda: the_route),
                lambda: objects[-1].switched(x()),
                lambda: objects[-1].packet(x(), x(), x(), x(), x(), x(), x()),
                lambda: objects[-1].packet(rng.randrange(65536), rng.randrange(1 << 32), True, vp8_payload(rng)),
                lambda: objects[-1].retransmission(x()),
                lambda: objects[-1].send_retransmission(x()),
                lambda: objects[-1].wants_keyframe(x()),
                lambda: native.fan_out(tuple(o for o in objects if isinstance(o, native.Output)), x(), x(), x(),
                                       rng.choice([x(), vp8_payload(rng)]), x()),
                lambda: native.StreamStatistics(x()).add(types.SimpleNamespace(sequence_number=x(), timestamp=x()),
                                                         x()),
                lambda: native.StreamStatistics(90000).take(types.SimpleNamespace(
                    base_seq=x(), max_seq=x(), cycles=x(), packets_received=x(), _jitter_q4=x(), _last_arrival=x(),
                    _last_timestamp=x(), _expected_prior=x(), _received_prior=x())),
                lambda: native.NackGenerator().take(types.SimpleNamespace(max_seq=x(), missing=rng.choice(
                    [x(), {1, 2, x()}, [x(), x()]]))),
                lambda: native.NackGenerator.__new__(native.NackGenerator).add(
                    types.SimpleNamespace(sequence_number=x(), timestamp=x())),
                lambda: native.RemoteBitrateEstimator.__new__(native.RemoteBitrateEstimator).add(
                    arrival_time_ms=x(), abs_send_time=x(), payload_size=x(), ssrc=x()),
                lambda: native.Demux((x(), "connected", rx, rng.choice([int(ffi.cast("uintptr_t", rx._srtp[0])), 0]),
                                      rng.choice([unprotect_at, 0]), rng.choice([{}, x()]),
                                      rng.choice([("b", "p"), x()])), x()).read_ready(
                    rng.choice([viewer.fileno(), -1, 10**6, 2**31, 2**70, "x", None]),
                    types.SimpleNamespace(_conn_lost=x()), Protocol()),
                lambda: native.Demux.__new__(native.Demux).add(x()),
                lambda: native.Stream(**{name: x() for name in STREAM_KEYWORDS}),
                lambda: native.Stream(*(x() for _ in range(rng.randrange(1, 16)))),  # positional: a TypeError
                lambda: native.parse_header(x(), x(), x()),
                lambda: native.vp8_descriptor(x()),
            ]
            for _ in range(rng.randrange(1, 12)):
                calls += 1
                try:
                    rng.choice(steps)()
                except (TypeError, ValueError, OverflowError, RuntimeError, IndexError, AttributeError,
                        OSError, SystemError) as exc:
                    assert not isinstance(exc, SystemError), (i, exc)  # a C-API misuse shows as SystemError
            while True:
                try:
                    viewer.recv(4096)
                except BlockingIOError:
                    break
    finally:
        node.close()
        viewer.close()
        print(f"arguments: {calls} calls")


def test_the_native_module_is_the_build_asked_for():
    """`make test-asan` sets CONFCTL_NATIVE_BUILD to its sanitizer build: this is that module, not the
    plain one the editable install would quietly load."""
    expected = os.environ.get("CONFCTL_NATIVE_BUILD")
    if not expected:
        pytest.skip("no particular build asked for")
    assert os.path.realpath(native.__file__).startswith(os.path.realpath(expected)), native.__file__
