"""Grants: what the control plane signs to let one site's leg into one room on a media node.

A grant is a short-lived, HMAC-signed JSON object; the node verifies it with
the key it received when it registered, and needs no database.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

from rooms.plan import Layout

VideoCodec = Literal["vp8", "h264"]  # a session's video codec, one for every leg (media/forwarding_wiring.py)
VIDEO_CODECS: tuple[VideoCodec, ...] = get_args(VideoCodec)
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
    layout: Layout | None = None  # what the site receives when its plan gives it less (None: the full program)
    codec: VideoCodec = "vp8"  # the session's video codec, VIDEO_CODECS: the only one the node negotiates with the site
    video_kbps: int | None = None  # the rate the site's video slot was reserved for: the node polices it (media/policing.py)


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
        if grant.layout is not None:
            grant = replace(grant, layout=Layout(grant.layout))
        if grant.codec not in VIDEO_CODECS:
            raise ValueError(f"unknown video codec {grant.codec!r}")
        if grant.video_kbps is not None and (not isinstance(grant.video_kbps, int) or grant.video_kbps <= 0):
            raise ValueError(f"reserved video rate must be a positive integer, not {grant.video_kbps!r}")
    except (TypeError, ValueError):
        raise InvalidGrant("malformed grant") from None
    if grant.expires < now:
        raise InvalidGrant("grant expired: join again through the control plane")
    if node is not None and grant.node not in (None, node):
        raise InvalidGrant(f"grant issued for node {grant.node}, not {node}: join again through the control plane")
    return grant


# -- one key per node ---------------------------------------------------------------------------
# Each node process gets its own key, derived from the control plane's secret and its id: it verifies
# the grants issued for it and nothing else, so a stolen node cannot mint grants for another node.
# Trunk grants (a child node's link to its session's root) are signed by the control plane with the
# root's key and handed to the child inside the placement; a node never signs a grant itself.

def node_key(master: bytes, node_id: str) -> bytes:
    return hmac.new(master, b"confctl node key\n" + node_id.encode(), hashlib.sha256).digest()


# -- calls from the control plane to a node -----------------------------------------------------
# A short-lived token bound to the node, the method and the path, signed with that node's key: the
# key itself never travels, and a token read off one call cannot be used for another path or node.
CONTROL_TTL_S = 30


def sign_control(key: bytes, node_id: str, method: str, path: str, now: float, content: bytes = b"") -> str:
    """`content`: the request's body, bound by its hash: a token read off one call cannot carry another body."""
    body = _b64(json.dumps({"node": node_id, "call": f"{method} {path}", "expires": now + CONTROL_TTL_S,
                            "content": hashlib.sha256(content).hexdigest()}, separators=(",", ":")).encode())
    return f"{body}.{_b64(_control_mac(key, body))}"


def _control_mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, b"control\n" + body.encode(), hashlib.sha256).digest()


def verify_control(key: bytes, text: str, node_id: str, method: str, path: str, now: float,
                   content: bytes = b"") -> bool:
    if not key or text.count(".") != 1 or len(text) > 1000:
        return False
    body, sig = text.split(".")
    try:
        if not hmac.compare_digest(_unb64(sig), _control_mac(key, body)):
            return False
        fields = json.loads(_unb64(body))
        return (isinstance(fields, dict) and fields.get("node") == node_id and fields.get("call") == f"{method} {path}"
                and fields.get("content") == hashlib.sha256(content).hexdigest()
                and isinstance(fields.get("expires"), (int, float)) and fields["expires"] >= now)
    except (ValueError, UnicodeDecodeError):
        return False
