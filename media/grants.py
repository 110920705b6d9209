"""Grants: what the control plane signs to let one site's leg into one room on a media node.

A grant is a short-lived, HMAC-signed JSON object; the node verifies it with
the key it received when it registered, and needs no database.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

MAX_GRANT = 16_000  # a cascade's placement of a province-wide session (~80 sites) fits
GRANT_TTL_S = 60  # long enough to reconnect to the node, short enough not to be reused later


class InvalidGrant(ValueError):
    pass


@dataclass(frozen=True)
class Grant:
    session: str
    site: str
    host: str
    record: bool
    echo: bool
    expires: float  # epoch seconds
    node: str | None = None  # the node it was issued for: another node refuses it
    # A session spread over node processes: {"attachments": {site: node}, "root": node, "root_url": url}
    cascade: dict[str, Any] | None = None
    trunk: bool = False  # a child node's leg to its session's root node (site is the child node's id)
    notice: str | None = None  # told to the site on joining (e.g. its node is down and it joins elsewhere)
    layout: str | None = None  # what the site receives when its plan gives it less: "speaker" | "audio"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_grant(key: bytes, grant: Grant) -> str:
    body = _b64(json.dumps(asdict(grant), separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def verify_grant(key: bytes, text: object, now: float, node: str | None = None) -> Grant:
    if not isinstance(text, str) or text.count(".") != 1 or len(text) > MAX_GRANT:
        raise InvalidGrant("malformed grant")
    body, sig = text.split(".")
    try:
        given = _unb64(sig)
        fields = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        raise InvalidGrant("malformed grant") from None
    if not hmac.compare_digest(given, hmac.new(key, body.encode(), hashlib.sha256).digest()):
        raise InvalidGrant("grant not signed by this node's control plane")
    try:
        grant = Grant(**fields)
    except TypeError:
        raise InvalidGrant("malformed grant") from None
    if grant.expires < now:
        raise InvalidGrant("grant expired: join again through the control plane")
    if node is not None and grant.node not in (None, node):
        raise InvalidGrant(f"grant issued for node {grant.node}, not {node}: join again through the control plane")
    return grant
