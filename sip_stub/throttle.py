"""Throttling password guesses per source and per (source, account): a pure object, no I/O, no clock.

Three records, each kept only while it matters and each in a table of bounded size:

- a source's failure budget (fail2ban, kamailio's `pike` on failures): SOURCE_BURST failures,
  refilled at one per SOURCE_REFILL_S whatever the accounts. Spent: the source is banned (`Ban`),
  its guesses are refused without being checked until a failure's worth has refilled.
- a (source, account) pair's failures: after PAIR_FREE of them (typos), the source waits
  BACKOFF_BASE_S after the next failure, twice that after the one after... up to BACKOFF_MAX_S
  (`Delay`); its guesses inside the wait are refused unchecked.
- an account's failure budget, all sources together: ACCOUNT_BURST, one per ACCOUNT_REFILL_S.
  Spent, the account is *under attack* until the budget has refilled completely, and its pairs
  get no free failures: every source that failed on it backs off from its first failure. The
  account itself is never locked.

A source with a clean record (no failure on the account, budget left) is always allowed: the
real phone registers while a thousand addresses guess its password, and every one of them is
slowed to a guess per back-off. A success forgets the pair's failures, never the source's.
Time is the caller's (`now`, seconds on a clock every replica shares), so replicas fed the same
events agree (see GuessEvent). The decision is `Allow | Delay | Ban` (`Ban`, not `CallRejected`: that is
the gateway's refusal of a call, sip_stub/calls.py).
"""
from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar, Union

SOURCE_BURST, SOURCE_REFILL_S = 10, 6.0  # then 10 failures a minute, whichever accounts
ACCOUNT_BURST, ACCOUNT_REFILL_S = 10, 60.0  # 10 failures more than one a minute brings: under attack
PAIR_FREE = 10  # failures of one source on one account before it backs off, unless the account is under attack
BACKOFF_BASE_S, BACKOFF_MAX_S = 1.0, 600.0
PAIR_MEMORY_S = 3600.0  # a pair's failures are forgotten this long after the last one (or its wait, if longer)
MAX_ENTRIES = 16_384  # per table: a flood of spoofed sources evicts the least recently seen, never grows memory
MAX_KEY_CHARS = 64  # longer account names are kept as a digest: a key costs little whatever the request held


@dataclass(frozen=True)
class GuessPolicy:
    source_burst: int = SOURCE_BURST
    source_refill_s: float = SOURCE_REFILL_S
    account_burst: int = ACCOUNT_BURST
    account_refill_s: float = ACCOUNT_REFILL_S
    pair_free: int = PAIR_FREE
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_max_s: float = BACKOFF_MAX_S
    pair_memory_s: float = PAIR_MEMORY_S

    def backoff(self, failures: int, free: int = 0) -> float:
        """How long a pair waits after its last failure: nothing for the first `free` failures."""
        if failures <= free:
            return 0.0
        return min(self.backoff_base_s * 2.0 ** min(failures - free - 1, 40), self.backoff_max_s)


# -- decisions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Allow:
    """Check the credentials."""


@dataclass(frozen=True)
class Delay:
    """This source failed on this account too often: refused unchecked for `retry_after_s`."""

    retry_after_s: float


@dataclass(frozen=True)
class Ban:
    """This source spent its failures, whichever accounts: refused unchecked for `retry_after_s`."""

    retry_after_s: float


GuessDecision = Union[Allow, Delay, Ban]
ALLOW = Allow()


# -- events, for replicas in other processes -------------------------------------------
class GuessOutcome(str, enum.Enum):
    FAILURE = "failure"
    SUCCESS = "success"


@dataclass(frozen=True)
class GuessEvent:
    """One recorded outcome, keys already normalised: what a replica applies to agree with us."""

    outcome: GuessOutcome
    source: str
    account: str
    at: float


def source_key(host: str) -> str:
    """The unit a guesser holds: an IPv4 address, an IPv6 /64 (one subscriber's), as is otherwise."""
    if ":" in host and "/" not in host:
        try:
            addr = ipaddress.IPv6Address(host.strip("[]").split("%")[0])
        except ValueError:
            return host[:MAX_KEY_CHARS]
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return host[:MAX_KEY_CHARS]


def account_key(name: str) -> str:
    if len(name) <= MAX_KEY_CHARS:
        return name
    return "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- the tables --------------------------------------------------------------------------
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """At most `cap` entries; the least recently used goes first, and forgotten ones are swept from its end."""

    def __init__(self, cap: int, forgotten: Callable[[V, float], bool]):
        self.cap, self._forgotten = cap, forgotten
        self._d: OrderedDict[K, V] = OrderedDict()
        self.evicted = 0

    def get(self, key: K) -> V | None:
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: K, value: V, now: float) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        for _ in range(2):  # amortised: each insertion sweeps up to two forgotten entries
            oldest = next(iter(self._d.items()), None)
            if oldest is None or oldest[0] == key or not self._forgotten(oldest[1], now):
                break
            del self._d[oldest[0]]
        if len(self._d) > self.cap:
            self._d.popitem(last=False)
            self.evicted += 1

    def pop(self, key: K) -> V | None:
        return self._d.pop(key, None)

    def __len__(self) -> int:
        return len(self._d)


class _Bucket:
    __slots__ = ("tokens", "at", "attacked")  # attacked: an account's, spent and not refilled completely since

    def __init__(self, tokens: float, at: float):
        self.tokens, self.at, self.attacked = tokens, at, False

    def refill(self, burst: int, refill_s: float, now: float) -> None:
        if now > self.at:  # a replica's event may carry an earlier time: never refill backwards
            self.tokens = min(float(burst), self.tokens + (now - self.at) / refill_s)
            self.at = now


class _Failures:
    __slots__ = ("count", "last")

    def __init__(self, last: float):
        self.count, self.last = 0, last


class GuessThrottle:
    def __init__(self, policy: GuessPolicy = GuessPolicy(), max_entries: int = MAX_ENTRIES):
        self.policy = policy
        p = policy
        self._sources: _Lru[str, _Bucket] = _Lru(
            max_entries, lambda b, now: b.tokens + (now - b.at) / p.source_refill_s >= p.source_burst)
        self._accounts: _Lru[str, _Bucket] = _Lru(
            max_entries, lambda b, now: b.tokens + (now - b.at) / p.account_refill_s >= p.account_burst)
        self._pairs: _Lru[tuple[str, str], _Failures] = _Lru(max_entries, self._pair_forgotten)

    def _pair_forgotten(self, f: _Failures, now: float) -> bool:
        return now >= f.last + max(self.policy.backoff(f.count), self.policy.pair_memory_s)

    # -- the decision --------------------------------------------------------------------
    def check(self, source: str, account: str, now: float) -> GuessDecision:
        src, acc = source_key(source), account_key(account)
        p = self.policy
        bucket = self._sources.get(src)
        if bucket is not None:
            bucket.refill(p.source_burst, p.source_refill_s, now)
            if bucket.tokens >= p.source_burst:
                self._sources.pop(src)  # clean again
            elif bucket.tokens < 1:
                return Ban((1 - bucket.tokens) * p.source_refill_s)
        failures = self._pairs.get((src, acc))
        if failures is None:
            return ALLOW  # a clean record: whatever the others do to this account
        if self._pair_forgotten(failures, now):
            self._pairs.pop((src, acc))
            return ALLOW
        free = 0 if self._under_attack(acc, now) else p.pair_free
        until = failures.last + p.backoff(failures.count, free)
        return Delay(until - now) if now < until else ALLOW

    def _under_attack(self, acc: str, now: float) -> bool:
        bucket = self._accounts.get(acc)
        if bucket is None:
            return False
        bucket.refill(self.policy.account_burst, self.policy.account_refill_s, now)
        if bucket.tokens >= self.policy.account_burst:
            self._accounts.pop(acc)  # the attack is over: refilled completely
            return False
        return bucket.attacked

    # -- what happened -------------------------------------------------------------------
    def record_failure(self, source: str, account: str, now: float) -> GuessEvent:
        src, acc = source_key(source), account_key(account)
        p = self.policy
        self._spend(self._sources, src, p.source_burst, p.source_refill_s, now)
        account_budget = self._spend(self._accounts, acc, p.account_burst, p.account_refill_s, now)
        if account_budget.tokens < 1:
            account_budget.attacked = True  # until it has refilled completely
        failures = self._pairs.get((src, acc))
        if failures is None:
            failures = _Failures(now)
            self._pairs.put((src, acc), failures, now)
        failures.count += 1
        failures.last = max(failures.last, now)
        return GuessEvent(GuessOutcome.FAILURE, src, acc, now)

    @staticmethod
    def _spend(table: _Lru[str, _Bucket], key: str, burst: int, refill_s: float, now: float) -> _Bucket:
        bucket = table.get(key)
        if bucket is None:
            bucket = _Bucket(float(burst), now)
            table.put(key, bucket, now)
        bucket.refill(burst, refill_s, now)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        return bucket

    def record_success(self, source: str, account: str, now: float) -> GuessEvent | None:
        """The pair's failures are forgotten (a typo, then the right password); None if it had none."""
        src, acc = source_key(source), account_key(account)
        if self._pairs.pop((src, acc)) is None:
            return None
        return GuessEvent(GuessOutcome.SUCCESS, src, acc, now)

    def apply(self, event: GuessEvent) -> None:
        """An outcome another process recorded."""
        if event.outcome is GuessOutcome.FAILURE:
            self.record_failure(event.source, event.account, event.at)
        else:
            self.record_success(event.source, event.account, event.at)

    # -- for operators and tests ---------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        return {"sources": len(self._sources), "accounts": len(self._accounts), "pairs": len(self._pairs)}

    @property
    def evicted(self) -> int:
        return self._sources.evicted + self._accounts.evicted + self._pairs.evicted

    def __len__(self) -> int:
        return len(self._sources) + len(self._accounts) + len(self._pairs)
