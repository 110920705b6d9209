"""Per-site join tokens: HMAC-signed (session, site), minted when a session is booked.

They carry no expiry of their own: the signalling server admits a leg only
inside the session's booked window (± a margin), so a token is useless
before and after its meeting.
"""
from __future__ import annotations

import base64
import hashlib
import hmac


class InvalidJoinToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, session_id: str, site: str) -> bytes:
    return hmac.new(secret, f"{session_id}\n{site}".encode(), hashlib.sha256).digest()[:18]


def mint(secret: bytes, session_id: str, site: str) -> str:
    body = _b64(f"{session_id}\n{site}".encode())
    return f"{body}.{_b64(_sign(secret, session_id, site))}"


def verify(secret: bytes, token: object) -> tuple[str, str]:
    """(session_id, site) of a genuine token; InvalidJoinToken otherwise."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 400:
        raise InvalidJoinToken("malformed join token")
    body, sig = token.split(".")
    try:
        session_id, site = _unb64(body).decode().split("\n")
        given = _unb64(sig)
    except (ValueError, UnicodeDecodeError):
        raise InvalidJoinToken("malformed join token") from None
    if not hmac.compare_digest(given, _sign(secret, session_id, site)):
        raise InvalidJoinToken("join token not issued by this system")
    return session_id, site
