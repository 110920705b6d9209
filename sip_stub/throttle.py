"""Throttling failed authentication, per source address and per account (a pure object, no I/O).

Each key has a bucket of BURST tokens that refills at one per REFILL_S; a failed digest
takes one. An empty bucket refuses (403) without checking credentials until it refills:
a password-guessing phone or script slows to one try per REFILL_S, a typo costs nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

BURST = 10
REFILL_S = 6.0  # 10 tries a minute once the burst is spent
MAX_KEYS = 100_000  # a flood of spoofed sources cannot grow memory without bound


@dataclass
class _Bucket:
    tokens: float
    at: float


class FailureThrottle:
    def __init__(self, burst: int = BURST, refill_s: float = REFILL_S, max_keys: int = MAX_KEYS):
        self.burst, self.refill_s, self.max_keys = burst, refill_s, max_keys
        self._buckets: dict[str, _Bucket] = {}

    def _level(self, key: str, now: float) -> _Bucket | None:
        b = self._buckets.get(key)
        if b is None:
            return None
        b.tokens = min(self.burst, b.tokens + (now - b.at) / self.refill_s)
        b.at = now
        if b.tokens >= self.burst:
            del self._buckets[key]  # full again: forget it
            return None
        return b

    def blocked(self, keys: tuple[str, ...], now: float) -> bool:
        """True while any of the keys (a source, an account) has spent its failures."""
        return any((b := self._level(k, now)) is not None and b.tokens < 1 for k in keys)

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        for k in keys:
            b = self._level(k, now)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    self._buckets.pop(next(iter(self._buckets)))  # the oldest key goes
                b = self._buckets[k] = _Bucket(float(self.burst), now)
            b.tokens = max(0.0, b.tokens - 1)

    def __len__(self) -> int:
        return len(self._buckets)
