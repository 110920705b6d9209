"""Reading incoming RTP headers for the forward-only path (media/rtp_input.py): against aiortc's own parser."""
from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media import native
from media.rtp_input import parse_header

ABS = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"


def extensions_map(abs_id: int) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=abs_id, uri=ABS), RTCRtpHeaderExtensionParameters(id=1, uri=MID),
        RTCRtpHeaderExtensionParameters(id=abs_id + 1, uri=LEVEL)]))
    return m


@pytest.mark.parametrize("abs_id", [3, 14])  # 14: the largest one-byte id; aiortc writes two-byte ids past it
@pytest.mark.parametrize("with_csrc", [False, True])
@pytest.mark.parametrize("padding", [0, 7])
def test_the_header_reads_as_aiortc_reads_it(abs_id, with_csrc, padding):
    m = extensions_map(abs_id)
    p = RtpPacket(payload_type=96, marker=1, sequence_number=65535, timestamp=4_000_000_000, ssrc=0xDEADBEEF,
                  payload=b"\x90\x80\x12\x34" + bytes(range(200)))
    p.padding_size = padding
    if with_csrc:
        p.csrc = [1, 2, 3]
    p.extensions.mid = "0"
    p.extensions.abs_send_time = 0x123456
    p.extensions.audio_level = (True, 30)
    data = p.serialize(m)
    h = parse_header(data, abs_id, abs_id + 1)
    ref = RtpPacket.parse(data, m)
    assert h is not None
    assert (h.payload_type, h.marker, h.seq, h.ts, h.ssrc) == (96, True, 65535, 4_000_000_000, 0xDEADBEEF)
    assert data[h.start:h.end] == ref.payload and h.abs_send_time == ref.extensions.abs_send_time == 0x123456
    assert len(data) - h.start == len(ref.payload) + ref.padding_size  # what the bandwidth estimate counts
    assert h.audio_level == ref.extensions.audio_level[1] == 30  # what the speaker election reads


def test_a_packet_without_the_extension_has_no_send_time():
    data = RtpPacket(payload_type=111, sequence_number=1, timestamp=2, ssrc=3, payload=b"opus").serialize()
    h = parse_header(data, 3, 4)
    assert h is not None and h.abs_send_time is None and h.audio_level is None
    assert data[h.start:h.end] == b"opus" and not h.marker


@pytest.mark.parametrize("data", [
    b"",
    b"\x80\x60\x00\x01",  # shorter than the fixed header
    b"\x40" + bytes(11),  # version 1
    b"\x8f" + bytes(11),  # fifteen CSRCs announced, none there
    b"\x90" + bytes(11) + b"\xbe\xde\x00\x09",  # an extension block longer than the packet
    b"\xa0" + bytes(11) + b"\x00\x00\x50",  # padding longer than the packet
    b"\xa0" + bytes(11) + b"\x00",  # padding length 0
])
def test_malformed_packets_are_refused_not_misread(data):
    assert parse_header(data, 3) is None


def test_an_element_with_id_0_is_padding_whatever_was_negotiated():
    """RFC 8285: ID 0 is padding. Neither an id left out (None) nor 0 finds a send time or level in an
    ID 0 "element"; zero bytes are skipped, an ID 0 with a length ends the block (as libwebrtc reads
    it), and nothing inside it is read as an element (issue 22, 2)."""
    head = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"x").serialize()[:12]
    head = bytes([head[0] | 0x10]) + head[1:]
    misread = head + b"\xbe\xde\x00\x02" + b"\x02\x12\x34\x56" + b"\x10\x1e\x00\x00" + b"x"
    for ids in ((None, None), (0, 0), (1, 1)):  # "12 34 56" inside it is no element of id 1 either
        h = parse_header(misread, *ids)
        assert h is not None and (h.abs_send_time, h.audio_level) == (None, None) and misread[h.start:] == b"x"
    padded = head + b"\xbe\xde\x00\x02" + b"\x00\x00\x32\x12\x34\x56" + b"\x00\x00" + b"x"
    h = parse_header(padded, 3, None)  # zero bytes before and after an element: skipped
    assert h is not None and h.abs_send_time == 0x123456


@pytest.mark.parametrize("abs_id,level_id", [(None, None), (0, 0), (3, 4), (14, 1), (255, 15), (300, -1)])
def test_the_c_reads_every_header_as_the_specification_does(abs_id, level_id):
    """media/native_input.c's parser against this one, on the packets above and every prefix of them."""
    m = extensions_map(3)
    p = RtpPacket(payload_type=96, marker=1, sequence_number=65535, timestamp=4_000_000_000, ssrc=0xDEADBEEF,
                  payload=b"\x90\x80\x12\x34" + bytes(range(40)))
    p.padding_size = 7
    p.csrc = [1, 2]
    p.extensions.mid = "0"
    p.extensions.abs_send_time = 0x123456
    p.extensions.audio_level = (True, 30)
    packets = [p.serialize(m), RtpPacket(payload_type=111, sequence_number=1, timestamp=2, ssrc=3,
                                         payload=b"opus").serialize()]
    packets += [b"\x90" + bytes(11) + b"\x10\x00\x00\x02" + b"\x03\x02\x12\x34\x04\x01\x1e\x00",  # two-byte
                b"\x90" + bytes(11) + b"\xbe\xde\x00\x01" + b"\xf2\x12\x34\x56",  # ID 15: stop
                b"\x90" + bytes(11) + b"\xbe\xde\x00\x01" + b"\x3f\x12\x34\x56"]  # longer than the block
    for data in packets:
        for end in range(len(data) + 1):
            h = parse_header(data[:end], abs_id, level_id)
            assert native.parse_header(data[:end], abs_id, level_id) == (tuple(h) if h else None), (data.hex(), end)
