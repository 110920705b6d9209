"""H.264 RTP payloads (RFC 6184) as a forwarding node reads them: does this packet start a key frame? Sans-io.

A node forwarding H.264 never decodes it. After a program switch it must start each receiver on a
key frame, so it looks at the NAL unit headers of each packet: a single NAL unit (types 1-23), the
units aggregated in a STAP-A (24) and the first fragment of an FU-A (28, start bit set).

A packet starts a key frame when it carries the first IDR slice of a picture (type 5, its header's
first_mb_in_slice 0: an encoder with several threads cuts a picture into slices, each its own IDR
NAL unit, and starting at a later one would give the decoder part of a picture), or a sequence
parameter set (7):
encoders send SPS and PPS just before each IDR in the same access unit, often in a STAP-A of their
own ahead of the IDR's fragments (aiortc's packetizer and libwebrtc's do). Starting a receiver at
the IDR fragment would drop the parameter sets the decoder needs for it, and it would ask for
another key frame.
"""
from __future__ import annotations

NAL_IDR = 5
NAL_SPS = 7
STAP_A = 24
FU_A = 28


def _starts_key_frame(kind: int, first_body_byte: int | None) -> bool:
    """A NAL unit of type `kind` whose body begins with that byte (None: not in the payload).
    first_mb_in_slice is the slice header's first field, ue(v): 0 is the single bit 1."""
    if kind == NAL_SPS:
        return True
    return kind == NAL_IDR and first_body_byte is not None and bool(first_body_byte & 0x80)


def h264_keyframe(payload: bytes) -> bool:
    """True when this RTP payload starts (or wholly is) an H.264 key frame: a picture's first IDR slice or
    an SPS, in a single NAL unit, in any unit of a STAP-A, or in the first fragment of an FU-A. Malformed or cut short:
    only what is wholly in the payload counts. Other packetizations (STAP-B, MTAP, FU-B: packetization
    mode 2, never negotiated) start none."""
    n = len(payload)
    if n < 1:
        return False
    kind = payload[0] & 0x1F
    if kind == STAP_A:
        i = 1
        while i + 2 < n:  # a 16-bit size, then at least the unit's header byte
            size = (payload[i] << 8) | payload[i + 1]
            if size == 0 or i + 2 + size > n:
                return False
            if _starts_key_frame(payload[i + 2] & 0x1F, payload[i + 3] if size > 1 else None):
                return True
            i += 2 + size
        return False
    if kind == FU_A:
        return n >= 2 and bool(payload[1] & 0x80) and _starts_key_frame(payload[1] & 0x1F,
                                                                        payload[2] if n > 2 else None)
    return _starts_key_frame(kind, payload[1] if n > 1 else None)
