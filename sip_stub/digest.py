"""HTTP Digest for SIP (RFC 3261 §22, RFC 8760: MD5 and SHA-256), sans-io.

Nonces are stateless: a timestamp signed with the service's key, so any
instance can verify them and none has to remember them. A nonce older than
NONCE_TTL_S is answered with stale=true, and the phone retries without
asking its user again.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

NONCE_TTL_S = 300
# A challenge for a known request is derived from it: a retransmission answered by another worker process
# gets the very same 401 (same nonce), which the phone's transaction absorbs as a retransmission.
NONCE_STEP_S = 10
ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class Verdict(str, enum.Enum):
    OK = "ok"
    STALE = "stale"
    BAD = "bad"


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def make_nonce(key: bytes, now: float, request_id: str | None = None) -> str:
    """A signed, timestamped nonce; with `request_id`, the same for that request within NONCE_STEP_S."""
    if request_id is None:
        stamp = f"{int(now):x}.{secrets.token_hex(4)}"
    else:
        salt = hmac.new(key, request_id.encode(), hashlib.sha256).hexdigest()[:8]
        stamp = f"{int(now) // NONCE_STEP_S * NONCE_STEP_S:x}.{salt}"
    return f"{stamp}.{hmac.new(key, stamp.encode(), hashlib.sha256).hexdigest()[:24]}"


def nonce_age(key: bytes, nonce: str, now: float) -> float | None:
    """Seconds since the nonce was issued, or None if it is not ours."""
    try:
        ts, salt, mac = nonce.split(".")
        issued = int(ts, 16)
    except ValueError:
        return None
    good = hmac.new(key, f"{ts}.{salt}".encode(), hashlib.sha256).hexdigest()[:24]
    return now - issued if hmac.compare_digest(mac, good) else None


def challenges(key: bytes, realm: str, now: float, stale: bool = False, order: tuple[str, ...] = ("SHA-256", "MD5"),
               request_id: str | None = None) -> list[str]:
    """WWW-Authenticate values, strongest algorithm first (RFC 8760 §2.4)."""
    nonce = make_nonce(key, now, request_id)
    tail = ", stale=true" if stale else ""
    return [f'Digest realm="{realm}", nonce="{nonce}", algorithm={alg}, qop="auth"{tail}' for alg in order]


def expected_response(ha1: str, algorithm: str, method: str, params: dict[str, str]) -> str:
    ha2 = _h(algorithm, f"{method}:{params.get('uri', '')}")
    if params.get("qop"):
        return _h(algorithm, f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:{params['qop']}:{ha2}")
    return _h(algorithm, f"{ha1}:{params.get('nonce', '')}:{ha2}")


def verify(key: bytes, realm: str, params: dict[str, str], method: str, ha1_by_alg: dict[str, str], now: float,
           allowed: tuple[str, ...] = tuple(ALGORITHMS)) -> Verdict:
    """OK, STALE (a good response to an old nonce) or BAD. Only `allowed` algorithms count: with
    `--sip-digest SHA-256` an MD5 response is refused even if it is right."""
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in ALGORITHMS or algorithm not in allowed or params.get("realm") != realm or "response" not in params:
        return Verdict.BAD
    age = nonce_age(key, params.get("nonce", ""), now)
    if age is None:
        return Verdict.BAD
    want = expected_response(ha1_by_alg[algorithm], algorithm, method, params)
    if not hmac.compare_digest(want, params["response"].lower()):
        return Verdict.BAD
    return Verdict.STALE if age > NONCE_TTL_S else Verdict.OK
