"""SIP messages (RFC 3261 §7, §20, §25), sans-io.

`parse_message(bytes)` returns a Request or Response or raises ValueError
saying what is wrong; `bytes(message)` writes the message back without
adding, reordering or recomputing anything. Header values are stored
unfolded with their names as received; lookups accept full or compact names
in any case.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length", "c": "content-type",
           "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via", "o": "event", "r": "refer-to",
           "b": "referred-by", "u": "allow-events", "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
           "d": "request-disposition", "y": "identity", "n": "identity-info"}
TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
VERSION = re.compile(r"^SIP/\d+\.\d+$", re.IGNORECASE)
MAX_HEADERS = 200


@functools.lru_cache(maxsize=1024)
def canonical(name: str) -> str:
    n = name.strip().lower()
    return COMPACT.get(n, n)


@dataclass
class Message:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def _index(self) -> dict[str, list[int]]:
        """Positions of each header by canonical name; rebuilt when headers are added or removed."""
        cache = self.__dict__.get("_idx")
        headers = self.headers
        if cache is not None and cache[0] is headers and cache[1] == len(headers):
            return cache[2]
        idx: dict[str, list[int]] = {}
        for i, (n, _) in enumerate(headers):
            idx.setdefault(canonical(n), []).append(i)
        self.__dict__["_idx"] = (headers, len(headers), idx)
        return idx

    def header(self, name: str) -> str | None:
        """The first value of a header (full or compact name, any case)."""
        pos = self._index().get(canonical(name))
        return self.headers[pos[0]][1] if pos else None

    def header_all(self, name: str) -> list[str]:
        return [self.headers[i][1] for i in self._index().get(canonical(name), [])]

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of every instance of a header, in order (quotes and <> respected)."""
        return [v for raw in self.header_all(name) for v in split_commas(raw)]

    def _head_and_body(self, start: str) -> bytes:
        lines = [start] + [f"{n}: {v}" for n, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    def cseq(self) -> tuple[int, str]:
        raw = self.header("CSeq")
        if raw is None:
            raise ValueError("missing CSeq")
        parts = raw.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10 or not TOKEN.fullmatch(parts[1]):
            raise ValueError(f"malformed CSeq {raw!r}")
        number = int(parts[0])
        if number >= 2 ** 31:
            raise ValueError(f"CSeq number {number} out of range")
        return number, parts[1]


@dataclass
class Request(Message):
    method: str = ""
    uri: str = ""
    version: str = "SIP/2.0"

    def __bytes__(self) -> bytes:
        return self._head_and_body(f"{self.method} {self.uri} {self.version}")


@dataclass
class Response(Message):
    status: int = 200
    reason: str = "OK"
    version: str = "SIP/2.0"

    def __bytes__(self) -> bytes:
        return self._head_and_body(f"{self.version} {self.status} {self.reason}")


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quoted strings and <...>."""
    if "," not in value and '"' not in value:  # the common case: one value, nothing to scan
        v = value.strip()
        return [v] if v else []
    out, cur, quoted, angle, escaped = [], [], False, False, False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
            continue
        if quoted and ch == "\\":
            cur.append(ch)
            escaped = True
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if quoted:
        raise ValueError(f"unterminated quoted string in {value!r}")
    tail = "".join(cur).strip()
    if tail or out:
        out.append(tail)
    return [v for v in out if v]


class FramingError(ValueError):
    """The head parsed, but where the body ends is not certain (RFC 3261 §18.3, §20.14): the
    request must be refused (400), never acted on. `message` holds the head, so it can be answered."""

    def __init__(self, reason: str, message: "Request | Response"):
        super().__init__(reason)
        self.message = message


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = data.find(sep)
        if i != -1:
            return data[:i], data[i + len(sep):]
    raise ValueError("no empty line ends the headers")


def parse_message(data: bytes) -> Request | Response:
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError("a SIP message is bytes")
    data = bytes(data).lstrip(b"\r\n")  # RFC 3261 §7.5: ignore CRLFs before the start line
    if not data:
        raise ValueError("empty datagram")
    head, rest = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"message head is not UTF-8: {exc}") from None
    lines = re.split(r"\r?\n", text)
    start, header_lines = lines[0], lines[1:]
    if "\x00" in start:
        raise ValueError("NUL byte in the start line")  # (a quoted header value may carry one, RFC 4475 §3.1.1.3)
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        if line[:1] in (" ", "\t"):
            if not headers:
                raise ValueError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, (value + " " + line.strip()).strip())  # §7.3.1: folding is one space
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"header line without a colon: {line[:60]!r}")
        name = name.rstrip(" \t")
        if not TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name[:40]!r}")
        headers.append((name, value.strip(" \t")))
        if len(headers) > MAX_HEADERS:
            raise ValueError(f"more than {MAX_HEADERS} headers")
    msg: Request | Response
    if start.upper().startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2 or not VERSION.fullmatch(parts[0]):
            raise ValueError(f"malformed status line {start[:60]!r}")
        if not (parts[1].isdigit() and len(parts[1]) == 3 and 100 <= int(parts[1]) <= 699):
            raise ValueError(f"invalid status code {parts[1][:10]!r}")
        msg = Response(headers=headers, status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "",
                       version=parts[0])
    else:
        parts = start.split(" ")
        if len(parts) != 3:
            raise ValueError(f"malformed request line {start[:60]!r} (method SP uri SP version)")
        method, uri, version = parts
        if not TOKEN.fullmatch(method):
            raise ValueError(f"invalid method {method[:20]!r}")
        if not VERSION.fullmatch(version):
            raise ValueError(f"invalid SIP version {version[:20]!r}")
        if not uri or ":" not in uri:
            raise ValueError(f"invalid Request-URI {uri[:60]!r}")
        msg = Request(headers=headers, method=method, uri=uri, version=version)
    lengths = msg.header_all("Content-Length")
    if not lengths:
        msg.body = rest  # allowed over UDP (§18.3): the datagram ends the body
        return msg
    # Every framing doubt is a FramingError: the message is answered 400, never guessed at
    # (RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9).
    if len(lengths) > 1:
        raise FramingError(f"Content-Length given {len(lengths)} times", msg)
    length = lengths[0]
    if not length.isdigit() or len(length) > 9:
        raise FramingError(f"invalid Content-Length {length[:20]!r}", msg)
    n = int(length)
    if n > len(rest):
        raise FramingError(f"Content-Length {n} exceeds the {len(rest)} bytes received", msg)
    msg.body = rest[:n]  # octets after the body are discarded (§18.3)
    return msg
