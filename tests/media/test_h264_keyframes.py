"""Which H.264 RTP payloads start a key frame (media/h264.py), and the Python output forwarding H.264."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy
import pytest
from aiortc.codecs.h264 import H264Encoder

from media.h264 import h264_keyframe
from media.rtp_output import Negotiated, RtpOutput

SPS = bytes([0x67, 0x42, 0xE0, 0x1F, 0xDA])  # nal_ref_idc 3, type 7
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])  # type 8
IDR = bytes([0x65, 0x88, 0x84, 0x00, 0x33])  # type 5, first_mb_in_slice 0 (the first bit after the header)
IDR_LATER_SLICE = bytes([0x65, 0x01, 0xE0, 0x00, 0x33])  # first_mb_in_slice 239: the picture's second slice
SLICE = bytes([0x41, 0x9A, 0x02, 0x0C])  # type 1: a P slice
SEI = bytes([0x06, 0x05, 0x01, 0x00])  # type 6


def stap_a(*units: bytes) -> bytes:
    return bytes([0x78]) + b"".join(len(u).to_bytes(2, "big") + u for u in units)  # F=0, NRI=3, type 24


def fu_a(unit: bytes, start: bool, end: bool = False) -> bytes:
    indicator = (unit[0] & 0xE0) | 28
    header = (0x80 if start else 0) | (0x40 if end else 0) | (unit[0] & 0x1F)
    return bytes([indicator, header]) + unit[1:]


@pytest.mark.parametrize("payload, key", [
    (IDR, True), (SPS, True),  # single NAL units
    (SLICE, False), (PPS, False), (SEI, False),
    (stap_a(SPS, PPS), True), (stap_a(SEI, PPS, IDR), True), (stap_a(SEI, SLICE), False),
    (fu_a(IDR, start=True), True), (fu_a(IDR, start=False), False), (fu_a(IDR, start=False, end=True), False),
    (fu_a(SLICE, start=True), False),
    # a picture cut into slices: only its first slice starts it
    (IDR_LATER_SLICE, False), (fu_a(IDR_LATER_SLICE, start=True), False), (stap_a(IDR_LATER_SLICE), False),
])
def test_a_key_frame_starts_at_an_idr_or_the_sps_before_it_in_any_packetization(payload, key):
    assert h264_keyframe(payload) is key


@pytest.mark.parametrize("payload", [
    b"", bytes([28]), bytes([0x7C]),  # empty; FU-A without its header
    bytes([0x78, 0x00]),  # STAP-A cut inside a size
    bytes([0x78, 0x00, 0x09]) + IDR,  # a size running past the payload: the IDR is not wholly there
    bytes([0x78, 0x00, 0x00]) + IDR,  # a zero size
    bytes([0x78, 0x00, 0x04]) + SLICE + bytes([0x00, 0x09]) + IDR,  # the second unit runs past the end
    bytes([0x79, 0x00, 0x00]) + IDR,  # STAP-B (packetization mode 2, never negotiated)
    bytes([0x65]), bytes([0x7C, 0x85]), bytes([0x78, 0x00, 0x01, 0x65]),  # an IDR header, its slice's not there
])
def test_malformed_or_cut_payloads_start_no_key_frame(payload):
    assert h264_keyframe(payload) is False


def aiortc_frames(count: int, size: tuple[int, int] = (640, 480)) -> list[tuple[bool, list[bytes]]]:
    """(asked for a key frame, RTP payloads) of frames from aiortc's own H.264 encoder and packetizer, from
    noise so that frames fragment (FU-A) as a camera's do."""
    enc = H264Encoder()
    rng = numpy.random.default_rng(7)
    out = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=numpy.uint8),
                                           format="rgb24")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
        forced = i in (0, count - 1)
        payloads, _ = enc.encode(frame, force_keyframe=forced)
        out.append((forced, payloads))
    return out


def test_aiortcs_encoder_key_frames_start_at_their_first_packet_and_no_other_frame_starts_one():
    frames = aiortc_frames(5)
    first_key = frames[0][1]
    # the parameter sets aggregated (STAP-A) ahead of the IDR's fragments: forwarding starts there; then the
    # IDR's first fragment (FU-A, start bit); the picture's later slices (x264's threads cut it) start nothing
    assert first_key[0][0] & 0x1F == 24 and first_key[1][0] & 0x1F == 28
    assert sum(p[0] & 0x1F == 28 and p[1] & 0x80 for p in first_key) > 1  # several slices
    assert [h264_keyframe(p) for p in first_key] == [True, True] + [False] * (len(first_key) - 2)
    for forced, payloads in frames[1:]:
        keys = [h264_keyframe(p) for p in payloads]
        assert keys[0] is forced and sum(keys) <= 2 * forced
    assert sum(len(p) for _, p in frames[1:-1]) > 3  # the delta frames were looked at, and fragmented


def test_an_h264_output_after_a_switch_starts_at_the_key_frame_and_rewrites_no_byte_of_the_payload():
    frames = aiortc_frames(4)
    out = RtpOutput("video", Negotiated(ssrc=0x1234, payload_type=102, codec="H264"))
    sent: list[bytes] = []
    seq, ts = 1000, 90000
    # the receiver joins during frames 1-2 (not key frames): nothing is sent until frame 3, forced key
    for i, (_, payloads) in enumerate(frames[1:], start=1):
        for j, p in enumerate(payloads):
            data = out.packet(seq, ts + 3000 * i, j == len(payloads) - 1, p)
            seq += 1
            if data is not None:
                sent.append(data)
    key_payloads = frames[3][1]
    assert len(sent) == len(key_payloads)
    assert [d[12:] for d in sent] == key_payloads  # no VP8 descriptor to find, nothing rewritten
    assert all(d[1] & 0x7F == 102 and d[8:12] == (0x1234).to_bytes(4, "big") for d in sent)
    assert out.frames == 1 and out.last_pic is None
