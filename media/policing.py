"""Holding a source to the rate its slot was reserved for. Sans-io.

A token bucket filled at the reserved rate times a tolerance, as deep as a short burst of it: a sender
within its reservation (a key frame's spike included) never drains it; one that stays above it does,
and from then on whole frames are dropped until the bucket holds enough again. The decision is taken
at a frame's first packet and kept for every packet of that frame, so a receiver gets whole frames
or none (never half a frame its decoder would show as corruption). A video frame refers to the one
before it (VP8 and H.264 without layers), so once a frame is dropped forwarding resumes only at a
key frame: `wants_keyframe` says when the source should be asked for one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

TOLERANCE = 1.2  # a sender may exceed its reservation by 20 % ...
BURST_S = 2.0  # ... and by more for this long (the bucket's depth at that rate)


@dataclass
class Policer:
    """Decides per packet whether a source's packet is forwarded: `admit(now, size, frame_start)`."""
    reserved_kbps: int
    tolerance: float = TOLERANCE
    burst_s: float = BURST_S
    policed_frames: int = 0  # frames dropped, for the leg's figures and /metrics
    policed_bytes: int = 0
    _tokens: float | None = field(default=None, repr=False)  # bytes; None: full at the first packet
    _at: float = field(default=0.0, repr=False)
    _dropping: bool = field(default=False, repr=False)  # the frame in progress is being dropped
    _broken: bool = field(default=False, repr=False)  # a frame was dropped: the next forwarded is a key frame

    def __post_init__(self) -> None:
        if self.reserved_kbps <= 0:
            raise ValueError(f"a reserved rate must be positive, not {self.reserved_kbps} kbit/s")

    @property
    def rate(self) -> float:
        """Bytes per second the bucket fills at."""
        return self.reserved_kbps * 1000 / 8 * self.tolerance

    @property
    def depth(self) -> float:
        return self.rate * self.burst_s

    @property
    def capped(self) -> bool:
        """The frame in progress is dropped: the sender should be asked for less."""
        return self._dropping

    @property
    def wants_keyframe(self) -> bool:
        """Frames were dropped and the bucket could take one again: only a key frame can resume."""
        return self._broken and self._tokens is not None and self._tokens > 0

    def admit(self, now: float, size: int, frame_start: bool, keyframe: bool = True) -> bool:
        """Whether to forward this packet. `frame_start`: the first packet of a frame (only there does
        the decision change); `keyframe`: that frame decodes alone (audio: every frame); `now` in
        seconds, monotonic."""
        if self._tokens is None:
            self._tokens, self._at = self.depth, now
        else:
            self._tokens = min(self.depth, self._tokens + max(0.0, now - self._at) * self.rate)
            self._at = now
        if frame_start:
            # a frame starts only when the bucket is not empty; it may then take the bucket below zero
            # (frame sizes are not known in advance), which the following frames pay back
            self._dropping = self._tokens <= 0 or (self._broken and not keyframe)
            if self._dropping:
                self.policed_frames += 1
                self._broken = True
            else:
                self._broken = False
        if self._dropping:
            self.policed_bytes += size
            return False
        self._tokens -= size
        return True
