"""RTP (RFC 3550) packets and G.711, sans-io."""
from __future__ import annotations

import audioop
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def __bytes__(self) -> bytes:
        return struct.pack("!BBHII", 0x80, (0x80 if self.marker else 0) | self.payload_type,
                           self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc) + self.payload


def parse_rtp(data: bytes) -> RtpPacket:
    if len(data) < 12:
        raise ValueError("shorter than an RTP header")
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    if b0 >> 6 != 2:
        raise ValueError("not RTP version 2")
    offset = 12 + 4 * (b0 & 0x0F)  # CSRCs
    if b0 & 0x10:  # header extension
        if len(data) < offset + 4:
            raise ValueError("truncated header extension")
        offset += 4 + 4 * struct.unpack("!H", data[offset + 2:offset + 4])[0]
    end = len(data)
    if b0 & 0x20:  # padding
        if end == 0 or data[-1] > end - offset:
            raise ValueError("bad padding")
        end -= data[-1]
    if offset > end:
        raise ValueError("truncated RTP packet")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, data[offset:end], bool(b1 & 0x80))


def decode_g711(codec: str, payload: bytes) -> bytes:
    return audioop.ulaw2lin(payload, 2) if codec == "PCMU" else audioop.alaw2lin(payload, 2)


def encode_g711(codec: str, pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, 2) if codec == "PCMU" else audioop.lin2alaw(pcm, 2)
