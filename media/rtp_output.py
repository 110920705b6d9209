"""RTP-level forwarding to one outgoing sender: packets in, rewritten headers out, no frames. Sans-io.

For an established leg the node forwards each incoming RTP packet as it arrives instead of
reassembling frames and packetizing them again per receiver (aiortc's path). What changes per
receiver is only the header:

- SSRC and payload type: the receiving leg's sender's;
- sequence numbers: the source's, shifted so they continue across program switches (a gap the
  source had stays a gap, so the receiver asks for it with a NACK, answered from `history`);
- timestamps: shifted the same way, one frame interval after the last one sent;
- the VP8 picture ID (15-bit): shifted so the decoder sees one continuous stream (H.264 has none:
  its payload is forwarded as it came);
- header extensions: those the receiver negotiated and aiortc's own sender would write — MID, the
  send time (abs-send-time, for the receiver's bandwidth estimate) and the source's audio level
  (RFC 6464, which a browser reports per source); one-byte form (RFC 8285), nothing else copied.

A video switch waits for the new source's key frame (the first packet of a VP8 key frame; for H.264
a packet with an IDR slice or the SPS before it, media/h264.py);
`wants_keyframe` says when to ask the source again. Nothing here does I/O: `packet()` returns
the bytes to protect and send, or None.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from media.h264 import h264_keyframe

_HEADER = struct.Struct("!BBHII")
# media/native_output.c holds these too (media.native.HISTORY, ...): tests/media/test_native_constants.py compares
HISTORY = 256  # packets kept for NACKs: ~1.3 s of 2 Mbit/s video (a satellite round trip is 0.6 s); 1,024 cost
# 100 MiB more at 144 outputs (scripts/bench/room_scale.py)
KEYFRAME_RETRY_S = 0.5
REORDER = 1000  # a packet this far behind the newest is dropped as stale (and the wrap stays safe)
VIDEO_STEP = 3000  # 90 kHz at 30 fps: the gap put between two sources' frames at a switch
AUDIO_STEP = 960  # 48 kHz Opus, 20 ms
MAX_PACKET = 1500  # the longest packet built (media/native.h): pylibsrtp's buffer, and the receiving node's limit


def vp8_descriptor(payload: bytes) -> tuple[int, int | None, bool]:
    """(length of the VP8 payload descriptor, offset of a 15-bit picture ID or None, starts a key frame)
    per RFC 7741 §4.2; key frame: start of partition 0 and the VP8 header's P bit clear (RFC 6386 §9.1).
    A malformed descriptor, cut short by the payload's end: its length is the payload's, a picture ID
    without both its bytes is none, and it starts no key frame."""
    n = len(payload)
    if n < 1:
        return 0, None, False
    b0 = payload[0]
    i = 1
    pic = None
    if b0 & 0x80:  # X: extension byte follows
        if n < 2:
            return n, None, False
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture ID
            if i < n and payload[i] & 0x80:  # M: 15 bits
                pic = i if i + 1 < n else None
                i += 2
            else:
                i += 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    start = bool(b0 & 0x10) and (b0 & 0x0F) == 0
    key = start and i < n and (payload[i] & 0x01) == 0
    return min(i, n), pic, key


@dataclass
class Negotiated:
    """What the receiving leg agreed for this sender."""
    ssrc: int
    payload_type: int
    codec: str  # "VP8" | "H264" | "opus"
    rtx_payload_type: int | None = None
    rtx_ssrc: int | None = None
    mid: str | None = None
    mid_id: int | None = None  # header extension ids, as negotiated (None: not negotiated)
    abs_send_time_id: int | None = None
    audio_level_id: int | None = None


def abs_send_time(unix_seconds: float) -> int:
    """The abs-send-time value: NTP seconds in 6.18 fixed point, 24 bits. The NTP epoch is 2208988800 s
    before Unix's, a multiple of 64, so the low six bits of the seconds are the same in both."""
    return int(unix_seconds * 262144) & 0xFFFFFF


def _one_byte_id(ext_id: int | None) -> int | None:
    return ext_id if ext_id is not None and 1 <= ext_id <= 14 else None  # 15 is reserved; larger need two bytes


class RtpOutput:
    """One outgoing stream's header rewriting, switch state and NACK history."""

    def __init__(self, kind: str, negotiated: Negotiated):
        self.kind = kind
        self.n = negotiated
        self._pt, self._ssrc = negotiated.payload_type, negotiated.ssrc  # read per packet
        self.video = kind == "video"
        self.h264 = negotiated.codec.upper() == "H264"  # no descriptor, no picture ID: key frames by NAL type
        self.need_keyframe = self.video
        self.asked_at = 0.0
        self._rebase = True
        self._seq_shift = 0
        self._ts_shift = 0
        self._pic_shift = 0
        self._base_seq = 0  # the first source sequence number sent since the switch
        self.last_seq: int | None = None
        self.last_ts: int | None = None
        self.last_pic: int | None = None
        self.history: list[bytes | None] = [None] * HISTORY
        self.packets = 0
        self.octets = 0
        self.frames = 0
        self._rtx_seq = 0
        self.retransmitted = 0  # packets sent again on a receiver's NACK
        mid_id, mid = _one_byte_id(negotiated.mid_id), (negotiated.mid or "").encode()
        mid_element = bytes([mid_id << 4 | (len(mid) - 1)]) + mid if mid_id and 1 <= len(mid) <= 16 else b""
        abs_id, level_id = _one_byte_id(negotiated.abs_send_time_id), _one_byte_id(negotiated.audio_level_id)
        self._abs_word = (abs_id << 4 | 2) << 24 if abs_id else None  # id and length - 1, then 3 bytes of time
        self._level_word = level_id << 12 if level_id else None  # id and length 1, then V and the level
        # per (has send time, has level): the block's start (profile, length, MID) and its padding
        self._blocks: list[tuple[bytes, bytes]] = []
        for size in (0, 2, 4, 6):  # after the MID: nothing, the level, the send time, both
            body = len(mid_element) + size
            words = (body + 3) // 4
            self._blocks.append((b"\xbe\xde" + words.to_bytes(2, "big") + mid_element, bytes(4 * words - body))
                                if body else (b"", b""))

    def _extensions(self, sent: int | None, level: int | None) -> bytes:
        """The RFC 8285 one-byte extension block for one packet, or b"" when it carries none."""
        has_time = sent is not None and self._abs_word is not None
        has_level = level is not None and self._level_word is not None
        start, pad = self._blocks[2 * has_time + has_level]
        if not start:
            return b""
        if has_time:
            start += (self._abs_word | (sent & 0xFFFFFF)).to_bytes(4, "big")  # type: ignore[operator]
        if has_level:
            start += (self._level_word | (level & 0x7F)).to_bytes(2, "big")  # type: ignore[operator]
        return start + pad

    def switched(self, now: float) -> None:
        """A new source (program change): wait for its key frame, then continue our numbering."""
        self._rebase = True
        if self.video:
            self.need_keyframe = True
            self.asked_at = now

    def wants_keyframe(self, now: float) -> bool:
        """Still waiting for a key frame and the last request is old: ask the source again."""
        if self.need_keyframe and now - self.asked_at > KEYFRAME_RETRY_S:
            self.asked_at = now
            return True
        return False

    def packet(self, seq: int, ts: int, marker: bool, payload: bytes,
               desc: tuple[int | None, bool] | None = None, sent: int | None = None,
               level: int | None = None) -> bytes | None:
        """The packet to send for a source packet, or None (waiting for a key frame, or a late one).
        `desc` is (picture ID offset, starts a key frame) when the caller parsed the descriptor once
        for all its outputs (H.264: (None, media.h264.h264_keyframe)); `sent` the abs-send-time value;
        `level` the source packet's audio level.
        ValueError, with nothing changed, if the packet would be longer than MAX_PACKET."""
        ext = self._extensions(sent, level)
        if 12 + len(ext) + len(payload) > MAX_PACKET:
            raise ValueError("packet is too long")
        pic_at = None
        if self.video:
            if self.h264:  # no picture ID to rewrite
                key = desc[1] if desc is not None else h264_keyframe(payload)
            else:
                pic_at, key = desc if desc is not None else vp8_descriptor(payload)[1:]
            if pic_at is not None and not 0 <= pic_at < len(payload) - 1:
                pic_at = None  # both bytes of a picture ID are in the payload, or there is none
            if self.need_keyframe:
                if not key:
                    return None
                self.need_keyframe = False
        if self._rebase:
            self._rebase = False
            self._seq_shift = 0 if self.last_seq is None else (self.last_seq + 1 - seq)
            step = VIDEO_STEP if self.video else AUDIO_STEP
            self._ts_shift = 0 if self.last_ts is None else (self.last_ts + step - ts)
            self._base_seq = seq
            if pic_at is not None:
                pic = ((payload[pic_at] & 0x7F) << 8) | payload[pic_at + 1]
                self._pic_shift = 0 if self.last_pic is None else (self.last_pic + 1 - pic)
        elif (seq - self._base_seq) & 0x8000:
            return None  # from before the switch point: its frame was never started here
        elif (seq - self._base_seq) & 0xFFFF > REORDER:
            self._base_seq = (seq - REORDER) & 0xFFFF  # keep the mark near: sequence numbers wrap
        out_seq = (seq + self._seq_shift) & 0xFFFF
        out_ts = (ts + self._ts_shift) & 0xFFFFFFFF
        if pic_at is not None and self._pic_shift:
            pic = ((((payload[pic_at] & 0x7F) << 8) | payload[pic_at + 1]) + self._pic_shift) & 0x7FFF
            body = bytearray(payload)
            body[pic_at], body[pic_at + 1] = 0x80 | (pic >> 8), pic & 0xFF
            payload = bytes(body)
            self.last_pic = pic
        elif pic_at is not None:
            self.last_pic = ((payload[pic_at] & 0x7F) << 8) | payload[pic_at + 1]
        if self.last_seq is None or not ((out_seq - self.last_seq) & 0x8000):
            self.last_seq, self.last_ts = out_seq, out_ts
        data = _HEADER.pack(0x90 if ext else 0x80, self._pt | 0x80 if marker else self._pt, out_seq, out_ts,
                            self._ssrc) + ext + payload
        self.history[out_seq % HISTORY] = data
        self.packets += 1
        self.octets += len(payload)
        if marker and self.video:
            self.frames += 1
        return data

    def retransmission(self, seq: int) -> bytes | None:
        """A packet a receiver reported lost (NACK): as RTX (RFC 4588) when negotiated, else as it was."""
        data = self.history[seq % HISTORY]
        if data is None or struct.unpack_from("!H", data, 2)[0] != seq:
            return None
        self.retransmitted += 1
        if self.n.rtx_payload_type is None or self.n.rtx_ssrc is None:
            return data
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        ts = struct.unpack_from("!I", data, 4)[0]
        end = 12 + (4 + 4 * struct.unpack_from("!H", data, 14)[0] if data[0] & 0x10 else 0)  # after the extensions
        # the extensions stay in the RTX header; the original sequence number leads the payload
        return (_HEADER.pack(data[0], (data[1] & 0x80) | self.n.rtx_payload_type, self._rtx_seq, ts, self.n.rtx_ssrc)
                + data[12:end] + data[2:4] + data[end:])
