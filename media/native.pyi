"""media.native: RTP-level forwarding's per-packet work in C (media/native.h). Its public surface.

tests/media/test_native_constants.py holds this file against the built module: the same names, the
same members per class, the same constructor signatures, and the constants equal to the Python side's.
"""
from typing import Any, Callable, Final, Protocol

from media.native_routes import ReceiveRoute, SendRoute
from media.rtp_output import Negotiated

# -- constants the Python side holds too (compared in tests/media/test_native_constants.py) -------------
MAX_PACKET: Final[int]  # rtp_output.MAX_PACKET, aiortc_hooks.MAX_DATAGRAM, pylibsrtp's buffer
SRTP_TRAILER: Final[int]  # pylibsrtp.SRTP_MAX_TRAILER_LEN
HISTORY: Final[int]  # rtp_output.HISTORY
REORDER: Final[int]  # rtp_output.REORDER
VIDEO_STEP: Final[int]  # rtp_output.VIDEO_STEP
AUDIO_STEP: Final[int]  # rtp_output.AUDIO_STEP
KEYFRAME_RETRY_S: Final[float]  # rtp_output.KEYFRAME_RETRY_S, forwarding.KEYFRAME_RETRY_S
FREEZE_S: Final[float]  # forwarding.FREEZE_S
READS_PER_WAKEUP: Final[int]  # aiortc_hooks.READS_PER_WAKEUP
RTP_HISTORY_SIZE: Final[int]  # aiortc.rtp's
PACKETS_LOST_MIN: Final[int]  # aiortc.rtp's
PACKETS_LOST_MAX: Final[int]  # aiortc.rtp's
ESTIMATE_WINDOW_MS: Final[int]  # aiortc.rate.RemoteBitrateEstimator's RateCounter
ESTIMATE_SCALE: Final[int]
ESTIMATE_GROUP_LENGTH: Final[int]  # (TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) // 1000
TIMESTAMP_TO_MS: Final[float]
BURST_DELTA_THRESHOLD_MS: Final[int]
MAX_ADAPT_OFFSET_MS: Final[int]
MIN_NUM_DELTAS: Final[int]
DELTA_COUNTER_MAX: Final[int]
FRAME_PERIOD_HISTORY: Final[int]  # aiortc.rate.MIN_FRAME_PERIOD_HISTORY_LENGTH
SEND_ROUTE: Final[tuple[str, ...]]  # the fields the C reads of a SendRoute, in order
RECEIVE_ROUTE: Final[tuple[str, ...]]  # the fields the C reads of a ReceiveRoute, in order


# -- what the C reads of the Python objects it is handed, by attribute name -----------------------------
class _Packet(Protocol):
    sequence_number: int
    timestamp: int


class _Source(Protocol):
    """media.forwarding.Source, as native_input.c reads it per packet."""
    _fast: tuple[Output, ...] | None
    sinks: list[Any]

    def request_keyframe(self) -> None: ...
    def on_keyframe_header(self, header: bytes, /) -> None: ...


class _Receiver(Protocol):
    _enabled: bool  # aiortc's RTCRtpReceiver


class _Transport(Protocol):
    _conn_lost: int  # asyncio's datagram transport


class _DatagramProtocol(Protocol):
    def datagram_received(self, data: bytes, addr: Any, /) -> None: ...
    def error_received(self, exc: OSError, /) -> None: ...


# -- outgoing ---------------------------------------------------------------------------------------
class Output:
    """media.rtp_output.RtpOutput in C, with SRTP protect and send (fan_out)."""

    def __init__(self, kind: str, negotiated: Negotiated) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def n(self) -> Negotiated: ...
    @property
    def video(self) -> bool: ...
    @property
    def need_keyframe(self) -> bool: ...
    @property
    def asked_at(self) -> float: ...
    @property
    def last_seq(self) -> int | None: ...
    @property
    def last_ts(self) -> int | None: ...
    @property
    def last_pic(self) -> int | None: ...
    @property
    def packets(self) -> int: ...
    @property
    def octets(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def retransmitted(self) -> int: ...
    @property
    def bytes_forwarded(self) -> int: ...
    @property
    def frames_forwarded(self) -> int: ...
    @property
    def freezes(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def send_errors(self) -> int: ...
    def packet(self, seq: int, ts: int, marker: bool, payload: bytes, desc: tuple[int | None, bool] | None = None,
               sent: int | None = None, level: int | None = None) -> bytes | None: ...
    def retransmission(self, seq: int, /) -> bytes | None: ...
    def send_retransmission(self, seq: int, /) -> bool: ...
    def switched(self, now: float, /) -> None: ...
    def wants_keyframe(self, now: float, /) -> bool: ...
    def set_router(self, router: Callable[[], SendRoute | None] | None, /) -> None: ...


def fan_out(outputs: tuple[Output, ...], seq: int, ts: int, marker: bool, payload: bytes, level: int | None,
            /) -> list[Output] | None:
    """One source packet to every output; the outputs to ask a key frame for, or None."""


# -- incoming ---------------------------------------------------------------------------------------
class StreamStatistics:
    """aiortc's StreamStatistics for one SSRC."""

    def __init__(self, clockrate: int) -> None: ...
    @property
    def fraction_lost(self) -> int: ...
    @property
    def packets_lost(self) -> int: ...
    @property
    def packets_expected(self) -> int | None: ...
    @property
    def jitter(self) -> int: ...
    @property
    def base_seq(self) -> int | None: ...
    @property
    def max_seq(self) -> int | None: ...
    @property
    def cycles(self) -> int: ...
    @property
    def packets_received(self) -> int: ...
    @property
    def _clockrate(self) -> int: ...
    def add(self, packet: _Packet, now: float | None = None, /) -> None: ...
    def take(self, other: Any, /) -> None: ...


class NackGenerator:
    """aiortc's NackGenerator."""

    def __init__(self) -> None: ...
    @property
    def missing(self) -> set[int]: ...
    @property
    def max_seq(self) -> int | None: ...
    def add(self, packet: _Packet, /) -> bool: ...
    def truncate(self) -> None: ...
    def take(self, other: Any, /) -> None: ...


class RemoteBitrateEstimator:
    """aiortc's abs-send-time bandwidth estimate."""

    def __init__(self) -> None: ...
    def add(self, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None: ...


class Stream:
    """One incoming media SSRC the native path takes (aiortc_hooks.ForwardOnly._take_natively)."""

    def __init__(self, *, ssrc: int, payload_type: int, video: bool, vp8: bool, abs_send_time_id: int | None,
                 audio_level_id: int | None, receiver: _Receiver, source: _Source, stats: StreamStatistics,
                 nack: NackGenerator | None, on_level: Callable[[int], object] | None,
                 estimator: RemoteBitrateEstimator | None, on_remb: Callable[[int, list[int]], object] | None,
                 on_active: Callable[[int], object], on_nack: Callable[[int], object]) -> None: ...
    @property
    def ssrc(self) -> int: ...
    @property
    def packets(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def bytes(self) -> int: ...


class Demux:
    """A DTLS transport's incoming SRTP, read from its sockets (aiortc_hooks.receive_directly)."""

    def __init__(self, route: ReceiveRoute, plain: Callable[[bytes, int], object], /) -> None: ...
    @property
    def packets(self) -> int: ...
    @property
    def handed_back(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def oversized(self) -> int: ...
    @property
    def streams(self) -> tuple[Stream, ...]: ...
    def add(self, stream: Stream, /) -> bool: ...
    def read_ready(self, fd: int, transport: _Transport, protocol: _DatagramProtocol, /) -> None: ...


# -- the parsers, for the tests that compare them with the Python specification ---------------------
def parse_header(data: bytes, abs_send_time_id: int | None, audio_level_id: int | None = None,
                 /) -> tuple[int, bool, int, int, int, int, int, int | None, int | None] | None:
    """media.rtp_input.parse_header's fields, as a plain tuple, or None."""


def vp8_descriptor(payload: bytes, /) -> tuple[int, int | None, bool]:
    """media.rtp_output.vp8_descriptor."""
