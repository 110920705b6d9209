"""Digest nonces: stateless, signed, and the same for a retransmitted request wherever it is answered."""
from __future__ import annotations

from sip_stub.digest import NONCE_STEP_S, NONCE_TTL_S, challenges, make_nonce, nonce_age

KEY = b"k" * 32


def test_a_retransmitted_request_gets_the_same_challenge_from_any_process():
    t = 1_800_000_000 // NONCE_STEP_S * NONCE_STEP_S
    first = challenges(KEY, "confctl", t + 1, order=("MD5",), request_id="call-1|1 REGISTER|via-a")
    again = challenges(KEY, "confctl", t + NONCE_STEP_S - 1, order=("MD5",), request_id="call-1|1 REGISTER|via-a")
    other = challenges(KEY, "confctl", t + 1, order=("MD5",), request_id="call-2|1 REGISTER|via-b")
    assert first == again and first != other


def test_derived_nonces_verify_and_age_like_random_ones():
    now = 1_800_000_007.5
    for nonce in (make_nonce(KEY, now), make_nonce(KEY, now, "call-1|1 REGISTER|via-a")):
        age = nonce_age(KEY, nonce, now)
        assert age is not None and 0 <= age < NONCE_STEP_S
        assert nonce_age(KEY, nonce, now + NONCE_TTL_S + NONCE_STEP_S) > NONCE_TTL_S  # then answered stale
        assert nonce_age(b"another key" * 3, nonce, now) is None  # not ours: refused
