"""The password-guessing throttle as a pure object: synthetic sources, accounts and clocks."""
from __future__ import annotations

import time

import pytest

from sip_stub.throttle import (ACCOUNT_BURST, BACKOFF_MAX_S, MAX_ENTRIES, PAIR_FREE, SOURCE_BURST, SOURCE_REFILL_S,
                               Allow, Ban, Delay, GuessEvent, GuessOutcome, GuessPolicy, GuessThrottle, account_key,
                               source_key)
from sip_stub.worker_process import guess_frame, parse_guess_frame

T0 = 1_700_000_000.0


def addr(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def test_a_clean_source_is_allowed_while_a_thousand_addresses_guess_the_account():
    th = GuessThrottle()
    for n in range(1000):
        if isinstance(th.check(addr(n), "desk-101", T0 + n / 100), Allow):
            th.record_failure(addr(n), "desk-101", T0 + n / 100)
    assert th.check("192.0.2.1", "desk-101", T0 + 10) == Allow()  # the real phone: never failed here


def test_the_old_account_lockout_is_gone():
    """1,000 failures from one address ban that address; the account stays open to everyone else."""
    th = GuessThrottle()
    for n in range(1000):
        th.record_failure("203.0.113.9", "desk-101", T0 + n / 1000)
    assert isinstance(th.check("203.0.113.9", "desk-101", T0 + 1), Ban)
    assert isinstance(th.check("203.0.113.9", "desk-102", T0 + 1), Ban)  # a banned source, whatever account
    assert th.check("198.51.100.7", "desk-101", T0 + 1) == Allow()


def test_a_source_spends_its_failures_then_is_banned_until_one_refills():
    th = GuessThrottle()
    for n in range(SOURCE_BURST):
        assert th.check("203.0.113.9", f"user-{n}", T0) == Allow()  # one failure on each of ten accounts
        th.record_failure("203.0.113.9", f"user-{n}", T0)
    assert th.check("203.0.113.9", "user-99", T0) == Ban(SOURCE_REFILL_S)
    assert th.check("203.0.113.9", "user-99", T0 + SOURCE_REFILL_S / 2) == Ban(SOURCE_REFILL_S / 2)
    assert th.check("203.0.113.9", "user-99", T0 + SOURCE_REFILL_S) == Allow()  # one more try
    th.record_failure("203.0.113.9", "user-99", T0 + SOURCE_REFILL_S)
    assert isinstance(th.check("203.0.113.9", "user-99", T0 + SOURCE_REFILL_S), Ban)
    # ...and a full refill forgets the source
    assert th.check("203.0.113.9", "user-99", T0 + 100 * SOURCE_REFILL_S) == Allow()
    assert th.sizes()["sources"] == 0


def test_a_few_typos_cost_nothing_then_a_lone_guesser_backs_off():
    th = GuessThrottle(GuessPolicy(source_burst=1000, account_burst=1000))  # the pair alone
    for n in range(PAIR_FREE):
        assert th.check("192.0.2.1", "desk-101", T0 + n) == Allow()
        th.record_failure("192.0.2.1", "desk-101", T0 + n)
    assert th.check("192.0.2.1", "desk-101", T0 + PAIR_FREE) == Allow()
    th.record_failure("192.0.2.1", "desk-101", T0 + PAIR_FREE)
    assert th.check("192.0.2.1", "desk-101", T0 + PAIR_FREE) == Delay(1.0)


def test_while_an_account_is_under_attack_each_guesser_backs_off_exponentially():
    # the source budget out of the way, and an attack that lasts: the back-off alone
    th = GuessThrottle(GuessPolicy(source_burst=1000, account_refill_s=1e9))
    for n in range(ACCOUNT_BURST):  # ten other addresses put the account under attack
        th.record_failure(addr(n), "desk-101", T0)
    guesser, now, waits = "203.0.113.9", T0, []
    for _ in range(12):
        assert th.check(guesser, "desk-101", now) == Allow()
        th.record_failure(guesser, "desk-101", now)
        decision = th.check(guesser, "desk-101", now)
        assert isinstance(decision, Delay)
        assert th.check(guesser, "desk-101", now + decision.retry_after_s - 0.01) == Delay(pytest.approx(0.01))
        waits.append(decision.retry_after_s)
        now += decision.retry_after_s
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, BACKOFF_MAX_S, BACKOFF_MAX_S]
    assert th.check("192.0.2.1", "desk-101", now) == Allow()  # a clean source: never delayed
    assert th.check(guesser, "desk-102", now) == Allow()  # another account: not under attack


def test_the_attack_ends_when_the_account_budget_has_refilled_completely():
    policy = GuessPolicy(source_burst=1000)
    th = GuessThrottle(policy)
    for n in range(ACCOUNT_BURST):
        th.record_failure("203.0.113.9", "desk-101", T0)
    assert isinstance(th.check("203.0.113.9", "desk-101", T0 + 1), Delay)
    # half refilled: still under attack (no flapping in and out of it with every refilled token)
    half = T0 + ACCOUNT_BURST / 2 * policy.account_refill_s
    assert th.check("203.0.113.9", "desk-101", half) == Delay(512 - (half - T0))  # 2**9 s after its 10th failure
    full = T0 + ACCOUNT_BURST * policy.account_refill_s
    # over: ten failures are what a pair may have for free again
    assert th.check("203.0.113.9", "desk-101", full) == Allow() and th.sizes()["accounts"] == 0


def test_the_right_password_forgets_the_pair_but_not_the_source_budget():
    th = GuessThrottle()
    for n in range(ACCOUNT_BURST):
        th.record_failure(addr(n), "desk-101", T0)
    th.record_failure("192.0.2.1", "desk-101", T0)  # the phone's own typo, during the attack
    assert th.check("192.0.2.1", "desk-101", T0 + 0.5) == Delay(0.5)
    assert th.check("192.0.2.1", "desk-101", T0 + 1) == Allow()
    event = th.record_success("192.0.2.1", "desk-101", T0 + 1)
    assert event == GuessEvent(GuessOutcome.SUCCESS, "192.0.2.1", "desk-101", T0 + 1)
    th.record_failure("192.0.2.1", "desk-101", T0 + 1)
    assert th.check("192.0.2.1", "desk-101", T0 + 1.5) == Delay(0.5)  # counted from one again, not from two
    assert th.record_success("198.51.100.7", "desk-101", T0) is None  # nothing to forget: nothing to share
    for n in range(SOURCE_BURST):  # a good login does not buy a guesser more failures elsewhere
        th.record_success("203.0.113.9", "mine", T0 + 2)
        th.record_failure("203.0.113.9", f"user-{n}", T0 + 2)
    assert isinstance(th.check("203.0.113.9", "user-99", T0 + 2), Ban)


def test_replicas_fed_the_same_events_decide_alike():
    here, there = GuessThrottle(), GuessThrottle()
    events = []
    for n in range(40):
        events.append(here.record_failure(addr(n % 7), "desk-101", T0 + n / 10))
    events.append(here.record_success(addr(3), "desk-101", T0 + 5))
    for e in events:
        there.apply(parse_guess_frame(guess_frame(4242, e))[1])  # through the frame the processes exchange
    for n in range(8):
        for now in (T0 + 5, T0 + 6, T0 + 30):
            assert here.check(addr(n), "desk-101", now) == there.check(addr(n), "desk-101", now)
    assert here.sizes() == there.sizes()


def test_guess_frames_round_trip_and_refuse_what_is_not_one():
    e = GuessEvent(GuessOutcome.FAILURE, "2001:db8::/64", 'desk "101"\n', T0)
    frame = guess_frame(7, e)
    assert frame.endswith(b"\n") and frame.count(b"\n") == 1
    assert parse_guess_frame(frame) == (7, e)
    for bad in (b"#guess {", b"#guess {}", b'#guess {"pid": 1}', b"127.0.0.1 5060\nREGISTER", b"#guess " + b"x" * 5000):
        with pytest.raises(ValueError):
            parse_guess_frame(bad)


def test_keys_a_guesser_cannot_multiply():
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::7") == "2001:db8:1:2::/64"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key(source_key("2001:db8::1")) == "2001:db8::/64"  # idempotent: replicas normalise again
    long = "u" * 70_000
    assert len(account_key(long)) < 64 and account_key(account_key(long)) == account_key(long)


def test_a_hundred_thousand_spoofed_sources_leave_each_table_at_its_cap():
    th = GuessThrottle()
    started = time.perf_counter()
    for n in range(100_000):
        th.record_failure(addr(n), "desk-101", T0 + n / 100_000)
    took = time.perf_counter() - started
    assert th.sizes() == {"sources": MAX_ENTRIES, "accounts": 1, "pairs": MAX_ENTRIES}
    assert th.evicted == 2 * (100_000 - MAX_ENTRIES)
    assert took < 5, took  # about 1 s here: each failure is a few dict operations
    # the most recent are the ones kept: the last address is still banned from nothing, but remembered
    assert th.check("192.0.2.1", "desk-101", T0 + 1) == Allow()


def test_the_tables_forget_what_no_longer_matters():
    th = GuessThrottle(max_entries=100)
    for n in range(50):
        th.record_failure(addr(n), f"user-{n}", T0)
    # an hour and more later, every insertion sweeps forgotten entries off the old end
    for n in range(50):
        th.record_failure(addr(1000 + n), "desk-101", T0 + 7200 + n)
    assert th.sizes()["sources"] <= 51 and th.sizes()["pairs"] <= 51 and th.evicted == 0
