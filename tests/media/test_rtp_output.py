"""RTP-level forwarding's header rewriting, pure: what a receiver sees is one continuous stream
across program switches, a video switch starts on a key frame, NACKs are answered (as RTX)."""
from __future__ import annotations

import random
import struct

import pytest

from media.native import Output as NativeOutput
from media.native_routes import SendRoute
from media.rtp_output import Negotiated, RtpOutput, abs_send_time, vp8_descriptor

OUT = Negotiated(ssrc=0xABCDEF01, payload_type=96, codec="VP8", rtx_payload_type=97, rtx_ssrc=0x01020304)


def vp8(key: bool, start: bool = True, pic: int = 100) -> bytes:
    """A VP8 payload descriptor with a 15-bit picture ID, then the first byte of the VP8 header."""
    return bytes([0x90 if start else 0x80, 0x80, 0x80 | (pic >> 8), pic & 0xFF, 0x00 if key else 0x01]) + b"frame"


@pytest.fixture(params=[RtpOutput, NativeOutput], ids=["python", "native"])
def Out(request):  # type: ignore[no-untyped-def]
    """Each rewriting test runs against the Python specification and the C the node forwards with."""
    return request.param


def fields(data: bytes) -> tuple[int, int, int, int, int]:
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    return b1 & 0x7F, seq, ts, ssrc, b1 >> 7


def test_a_vp8_descriptor_is_read_as_rfc_7741_says():
    assert vp8_descriptor(vp8(True)) == (4, 2, True)
    assert vp8_descriptor(vp8(False))[2] is False
    assert vp8_descriptor(vp8(True, start=False))[2] is False  # a key frame's later packets do not start it
    assert vp8_descriptor(bytes([0x10, 0x00]))[:2] == (1, None)  # no extension: no picture ID


def test_video_waits_for_a_key_frame_then_keeps_one_numbering_across_a_switch(Out):
    out = Out("video", OUT)
    out.switched(0.0)
    assert out.packet(1000, 90000, False, vp8(False)) is None  # not a key frame: waiting
    assert out.wants_keyframe(1.0) and not out.wants_keyframe(1.1)  # asked again, not on every packet
    first = out.packet(1001, 93000, False, vp8(True, pic=7))
    pt, seq, ts, ssrc, _ = fields(first)
    assert (pt, ssrc) == (96, 0xABCDEF01)
    last = out.packet(1002, 93000, True, vp8(True, start=False, pic=7))
    assert fields(last)[1] == seq + 1 and fields(last)[4] == 1  # marker kept
    assert out.frames == 1
    # the program switches to another site: its numbering is nothing like ours
    out.switched(2.0)
    assert out.packet(50000, 7_000_000, True, vp8(False, pic=3000)) is None
    after = out.packet(50001, 7_003_000, False, vp8(True, pic=3001))
    _, seq2, ts2, _, _ = fields(after)
    assert seq2 == (seq + 2) & 0xFFFF and ts2 == ts + 3000  # continues: no gap, one frame later
    assert vp8_descriptor(after[12:])[1] == 2 and ((after[14] & 0x7F) << 8 | after[15]) == 8  # picture ID 7 → 8
    assert out.packet(49999, 7_000_000, False, vp8(False)) is None  # a packet from before the switch point


def test_a_gap_from_the_source_stays_a_gap_and_a_nack_is_answered_as_rtx(Out):
    out = Out("video", OUT)
    out.switched(0.0)
    a = out.packet(10, 0, False, vp8(True))
    c = out.packet(12, 0, True, vp8(True, start=False))  # 11 was lost upstream
    assert fields(c)[1] == fields(a)[1] + 2  # so the receiver NACKs it
    assert out.retransmission(fields(a)[1] + 1) is None  # we never had it
    rtx = out.retransmission(fields(a)[1])
    pt, _, ts, ssrc, _ = fields(rtx)
    assert (pt, ssrc, ts) == (97, 0x01020304, fields(a)[2])
    assert struct.unpack_from("!H", rtx, 12)[0] == fields(a)[1] and rtx[14:] == a[12:]  # OSN, then the payload


def _aiortc_reads(data: bytes, n: Negotiated):  # type: ignore[no-untyped-def]
    """The packet as aiortc's receiver parses it, with the extension ids the leg negotiated."""
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters as Ext, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpParameters(headerExtensions=[
        Ext(id=n.mid_id, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
        Ext(id=n.abs_send_time_id, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        Ext(id=n.audio_level_id, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level")]))
    return RtpPacket.parse(data, ids)


def test_each_receiver_gets_the_header_extensions_it_negotiated_on_packets_and_retransmissions(Out):
    """MID, the node's send time and the source's audio level, at the receiver's own ids (a browser
    that offered picks them): what aiortc's sender wrote on the frame path."""
    video_n = Negotiated(0xABCDEF01, 96, "VP8", 97, 0x01020304, mid="1", mid_id=4, abs_send_time_id=3)
    video = Out("video", video_n)
    video.switched(0.0)
    data = video.packet(10, 0, True, vp8(True), sent=abs_send_time(1_000_000.5))
    p = _aiortc_reads(data, video_n)
    assert (p.extensions.mid, p.extensions.abs_send_time, p.payload) == ("1", abs_send_time(1_000_000.5), vp8(True))
    assert abs_send_time(1_000_000.5) == (int(1_000_000.5 + 2208988800) % 64) << 18 | 1 << 17  # 6.18 NTP seconds
    rtx = _aiortc_reads(video.retransmission(p.sequence_number), video_n)
    assert (rtx.payload_type, rtx.extensions.mid) == (97, "1")
    assert struct.unpack_from("!H", rtx.payload)[0] == p.sequence_number and rtx.payload[2:] == vp8(True)

    audio_n = Negotiated(5, 111, "opus", mid="0", mid_id=1, audio_level_id=2)
    audio = Out("audio", audio_n)
    audio.switched(0.0)
    p = _aiortc_reads(audio.packet(7, 48000, False, b"opus", sent=123, level=35), audio_n)
    assert (p.extensions.mid, p.extensions.audio_level, p.extensions.abs_send_time, p.payload) == \
        ("0", (False, 35), None, b"opus")  # abs-send-time not negotiated for this one: not sent
    assert _aiortc_reads(audio.packet(8, 48960, False, b"opus"), audio_n).extensions.audio_level is None
    bare = Out("audio", Negotiated(5, 111, "opus"))
    bare.switched(0.0)
    assert bare.packet(7, 0, False, b"opus", sent=123, level=35)[0] == 0x80  # nothing negotiated: no block


def test_audio_switches_at_once_with_continuous_timestamps(Out):
    out = Out("audio", Negotiated(5, 111, "opus"))
    out.switched(0.0)
    _, s1, t1, _, _ = fields(out.packet(7, 48000, False, b"opus"))
    out.switched(1.0)
    _, s2, t2, _, _ = fields(out.packet(60000, 123456, False, b"opus"))
    assert (s2, t2) == ((s1 + 1) & 0xFFFF, t1 + 960)
    assert out.retransmission(s2)[:2] == bytes([0x80, 111])  # no RTX negotiated: sent again as it was


def test_sequence_numbers_wrap_without_dropping_anything(Out):
    out = Out("audio", Negotiated(5, 111, "opus"))
    out.switched(0.0)
    sent = [out.packet((60000 + i) & 0xFFFF, 960 * i, False, b"x") for i in range(140_000)]
    assert all(p is not None for p in sent)  # two wraps of the 16-bit counter, nothing taken as stale
    assert fields(sent[-1])[1] == (60000 + 139_999) & 0xFFFF
    assert out.packet((60000 + 139_999 - 1500) & 0xFFFF, 0, False, b"x") is None  # far behind: stale


def test_a_source_fed_packets_without_frames_counts_what_operators_see():
    """On the forward-only path nobody reassembles frames: frames, bytes and the camera's
    resolution (from the key frame's VP8 header, RFC 6386 §9.1) are counted from packets."""
    from media.forwarding import Source
    video = Source("video", lambda: None)
    key_header = b"\x00\x00\x00\x9d\x01\x2a" + (1280).to_bytes(2, "little") + (720).to_bytes(2, "little")
    key = bytes([0x90, 0x80, 0x80, 0x07]) + key_header
    later = bytes([0x80, 0x80, 0x80, 0x07]) + b"rest of it"
    video.on_packet("VP8", 1, 3000, False, key, framed=False)
    video.on_packet("VP8", 2, 3000, True, later, framed=False)
    video.on_packet("VP8", 3, 6000, True, bytes([0x90, 0x80, 0x80, 0x08, 0x01]) + b"delta", framed=False)
    assert video.frames == 2 and video.resolution == (1280, 720)
    assert video.bytes == len(key_header) + len(b"rest of it") + len(b"\x01delta")  # descriptors left out
    # through aiortc's path the frames are counted once, by on_frame, not per packet
    video.on_packet("VP8", 4, 9000, True, later, framed=True)
    assert video.frames == 2
    audio = Source("audio", lambda: None)
    for seq in range(5):
        audio.on_packet("opus", seq, 960 * seq, False, b"opus", framed=False)
    assert audio.frames == 5 and audio.bytes == 20


def test_the_native_output_writes_what_the_python_specification_writes():
    """The same random stream (switches, reordering, losses, duplicates, key frames, picture IDs,
    extensions present and absent, NACKs) through both: every packet and retransmission identical."""
    rng = random.Random(7)
    for n, kind in ((Negotiated(0xABCDEF01, 96, "VP8", 97, 0x01020304, mid="1", mid_id=4, abs_send_time_id=3),
                     "video"),
                    (Negotiated(9, 96, "VP8"), "video"),
                    (Negotiated(5, 111, "opus", mid="0", mid_id=1, audio_level_id=2, abs_send_time_id=14), "audio")):
        spec, native = RtpOutput(kind, n), NativeOutput(kind, n)
        seq, ts, pic, now = rng.randrange(65536), rng.randrange(1 << 32), rng.randrange(1 << 15), 0.0
        for i in range(20_000):
            now += 0.01
            if rng.random() < 0.002:  # the program switches to another source
                seq, ts, pic = rng.randrange(65536), rng.randrange(1 << 32), rng.randrange(1 << 15)
                spec.switched(now)
                native.switched(now)
            step = rng.choice([1] * 20 + [2, 0, -3, 1200, -1200])  # losses, duplicates, reordering, stale
            seq = (seq + step) & 0xFFFF
            ts = (ts + rng.choice([0, 0, 3000])) & 0xFFFFFFFF
            pic = (pic + rng.choice([0, 1])) & 0x7FFF
            payload = (vp8(rng.random() < 0.05, start=rng.random() < 0.3, pic=pic) if kind == "video"
                       else bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
            args = dict(sent=rng.choice([None, rng.randrange(1 << 24)]), level=rng.choice([None, rng.randrange(128)]))
            marker = rng.random() < 0.2
            assert spec.packet(seq, ts, marker, payload, **args) == native.packet(seq, ts, marker, payload, **args), i
            assert spec.wants_keyframe(now) == native.wants_keyframe(now)
            if rng.random() < 0.05 and spec.last_seq is not None:
                lost = (spec.last_seq - rng.randrange(300)) & 0xFFFF
                assert spec.retransmission(lost) == native.retransmission(lost)
        assert (spec.last_seq, spec.last_ts, spec.last_pic, spec.packets, spec.octets, spec.frames,
                spec.retransmitted, spec.need_keyframe) == \
            (native.last_seq, native.last_ts, native.last_pic, native.packets, native.octets, native.frames,
             native.retransmitted, native.need_keyframe)


def test_a_receiver_whose_link_is_full_loses_whole_frames_not_packets_scattered_over_all_of_them():
    """When the kernel has no room for a packet of a video frame (the leg's buffer or shaped link is
    full), the rest of that frame is not sent - it could not be decoded, and the link has no room -
    but kept for NACKs; the next frame is sent again, and nothing waits. A real libsrtp session and a
    datagram socket whose reader has stopped."""
    import os
    import socket
    import types

    import pylibsrtp
    from pylibsrtp._binding import ffi, lib

    from media.native import fan_out

    node, viewer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    node.setblocking(False)
    session = pylibsrtp.Session(pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    dtls = types.SimpleNamespace(_state="connected", _tx_srtp=session)
    transport = types.SimpleNamespace(_closing=False)  # asyncio's, open
    protocol = types.SimpleNamespace(transport=transport)
    counters = {"packets": 0, "octets": 0, "rtp_ts": 0, "ntp_ts": 0}
    out = NativeOutput("video", OUT)
    out.set_router(lambda: SendRoute(dtls, "connected", protocol, transport, node.fileno(), int(socket.AF_UNIX), None,
                                     session, int(ffi.cast("uintptr_t", session._srtp[0])),
                                     int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))), counters,
                                     ("packets", "octets", "rtp_ts", "ntp_ts")))
    out.switched(0.0)
    outs, seq, frames, received = (out,), 0, 0, []

    def frame(key: bool, packets: int = 10) -> None:
        nonlocal seq, frames
        frames += 1
        for i in range(packets):
            seq += 1
            fan_out(outs, seq, 3000 * frames, i == packets - 1, vp8(key, start=i == 0) + bytes(900), None)

    frame(True)
    while out.dropped == 0:  # the viewer reads nothing: its queue fills
        frame(False)
    assert out.skipped > 0 and out.dropped <= 2  # the rest of the frame with the drop was not sent, not tried
    broken = out.last_seq
    assert out.retransmission(broken) is not None  # but kept, for the NACK that asks for it
    viewer.setblocking(False)
    while True:
        try:
            received.append(viewer.recv(2048))
        except BlockingIOError:
            break
    before = len(received)
    frame(False)  # the link has room again: the next frame goes out whole
    while True:
        try:
            received.append(viewer.recv(2048))
        except BlockingIOError:
            break
    assert len(received) - before == 10 and counters["packets"] == len(received) + out.dropped
    node.close()
    viewer.close()


def test_an_address_c_cannot_read_is_sent_through_pythons_transport():
    """An IPv6 link-local peer (fe80::…%iface) is one inet_pton does not read: the output still
    sends, protected, through the protocol's asyncio transport, to that address."""
    import os
    import socket
    import types

    import pylibsrtp
    from pylibsrtp._binding import ffi, lib

    from media.native import fan_out

    session = pylibsrtp.Session(pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    dtls = types.SimpleNamespace(_state="connected", _tx_srtp=session)
    sent: list[tuple[bytes, tuple]] = []
    transport = types.SimpleNamespace(sendto=lambda data, addr: sent.append((data, addr)), _closing=False)
    protocol = types.SimpleNamespace(transport=transport)
    out = NativeOutput("audio", Negotiated(5, 111, "opus"))
    out.set_router(lambda: SendRoute(dtls, "connected", protocol, transport, -1, int(socket.AF_INET6),
                                     ("fe80::1%lo", 5004), session, int(ffi.cast("uintptr_t", session._srtp[0])),
                                     int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
                                     {"p": 0, "o": 0, "r": 0, "n": 0}, ("p", "o", "r", "n")))
    out.switched(0.0)
    fan_out((out,), 7, 960, False, b"opus", None)
    assert [addr for _, addr in sent] == [("fe80::1%lo", 5004)] and len(sent[0][0]) > 12 + 4  # with its SRTP tag
    assert out.frames_forwarded == 1 and out.send_errors == 0


def test_a_truncated_vp8_descriptor_is_malformed_not_an_error(Out):
    """`90 c0 81`: a 15-bit picture ID whose second byte is not there. The specification raised
    IndexError; both now read it as a descriptor without a picture ID, as the C did (issue 22, 8)."""
    out = Out("video", OUT)
    out.switched(0.0)
    assert out.packet(1, 0, True, vp8(True, pic=7)) is not None
    out.switched(1.0)
    assert out.packet(40000, 90000, True, vp8(True, pic=300)) is not None  # a switch: picture IDs are shifted
    for payload in (bytes([0x90, 0xC0, 0x81]), bytes([0x80, 0xE0]), bytes([0x90, 0x80, 0x80]), bytes([0x90, 0x80])):
        data = out.packet(40001, 93000, True, payload)
        assert data is not None and data[12:] == payload  # no picture ID to shift: the payload as it was
    assert out.last_pic == 8


def test_vp8_descriptors_read_the_same_in_c_at_every_truncation():
    """The descriptor's length never passes the payload's end, a picture ID cut short is none, and
    the C agrees for every prefix of every descriptor form (issue 22, 7 and 8)."""
    from media import native
    assert vp8_descriptor(bytes([0x80, 0xE0])) == (2, None, False)
    assert vp8_descriptor(bytes([0x90, 0xC0, 0x81])) == (3, None, False)
    forms = [vp8(True), vp8(False, start=False), bytes([0x90, 0xE0, 0x81, 0x02, 0x03, 0x04, 0x00]) + b"key",
             bytes([0x90, 0xF0, 0x05, 0x06, 0x07, 0x00]), bytes([0x10, 0x00, 0x9D]), bytes([0x80, 0x00, 0x01])]
    rng = random.Random(4)
    forms += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))) for _ in range(2000)]
    for form in forms:
        for end in range(len(form) + 1):
            prefix = form[:end]
            length, pic, key = vp8_descriptor(prefix)
            assert native.vp8_descriptor(prefix) == (length, pic, key), prefix.hex()
            assert length <= len(prefix) and (pic is None or pic + 1 < len(prefix))


def test_the_bytes_counted_from_a_malformed_descriptor_are_none_not_negative():
    from media.forwarding import Source
    video = Source("video", lambda: None)
    video.on_packet("VP8", 1, 3000, True, bytes([0x80, 0xE0]), framed=False)
    assert video.bytes == 0 and video.frames == 1


def test_a_packet_too_long_to_send_changes_nothing(Out):
    """A key frame packet longer than MAX_PACKET is refused before it is taken for the key frame the
    output waits for, or moves its numbering; the next one that fits is (issue 22, 7)."""
    out = Out("video", OUT)
    out.switched(0.0)
    with pytest.raises(ValueError, match="too long"):
        out.packet(100, 9000, False, vp8(True) + bytes(1500))
    assert out.need_keyframe and out.last_seq is None and out.packets == 0
    assert out.packet(101, 9000, False, vp8(False)) is None  # still waiting for a key frame
    first = out.packet(102, 12000, True, vp8(True, pic=5))
    assert first is not None and out.last_pic == 5 and out.packets == 1
    with pytest.raises(ValueError, match="too long"):
        out.packet(103, 15000, True, vp8(False, pic=6) + bytes(1500), sent=abs_send_time(1.0))
    assert (out.last_seq, out.last_pic) == (fields(first)[1], 5)
