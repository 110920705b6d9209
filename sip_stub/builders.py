"""Building requests and responses from others (RFC 3261 §8.2.6, §12, §17.1.1.3). Sans-io."""
from __future__ import annotations

import secrets

from sip_stub.message import Request, Response

MAGIC = "z9hG4bK"
COPIED = ("via", "from", "to", "call-id", "cseq")


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return MAGIC + secrets.token_hex(8)


def make_response(req: Request, status: int, reason: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", to_tag: str | None = None) -> Response:
    """A response to `req`: Via, From, To, Call-ID and CSeq copied; a To tag added when given."""
    out: list[tuple[str, str]] = []
    for name, value in req.headers:
        key = name.lower()
        full = {"v": "via", "f": "from", "t": "to", "i": "call-id"}.get(key, key)
        if full not in COPIED:
            continue
        if full == "to" and to_tag and ";tag=" not in value.replace(" ", "").lower():
            value = f"{value};tag={to_tag}"
        out.append((name, value))
    out += headers or []
    out.append(("Content-Length", str(len(body))))
    return Response(headers=out, status=status, reason=reason, body=body)


def make_ack_for(invite: Request, resp: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final (§17.1.1.3): same branch, To from the response."""
    top_via = next(v for n, v in invite.headers if n.lower() in ("via", "v"))
    to = next((v for n, v in resp.headers if n.lower() in ("to", "t")), "")
    keep = [(n, v) for n, v in invite.headers if n.lower() in ("from", "f", "call-id", "i", "route", "max-forwards")]
    number = invite.cseq()[0]
    return Request(method="ACK", uri=invite.uri, headers=[("Via", top_via), ("To", to), *keep,
                                                          ("CSeq", f"{number} ACK"), ("Content-Length", "0")])
