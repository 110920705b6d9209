"""Reading incoming RTP headers for the forward-only path (media/rtp_input.py): against aiortc's own parser."""
from __future__ import annotations

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

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
