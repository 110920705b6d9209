"""Structured header fields: URIs, name-addr (From/To/Contact), Via, digest parameters. Sans-io."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9\-.]*|\d{1,3}(\.\d{1,3}){3})$")


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}" + (f"={v}" if v is not None else "") for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"


def parse_params(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        k, eq, v = item.partition("=")
        out[k.strip().lower()] = v.strip() if eq else None
    return out


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips", "tel"):
        raise ValueError(f"unsupported URI {text[:60]!r}")
    rest = rest.split("?", 1)[0]  # URI headers are not used here
    hostport, _, params = rest.partition(";")
    if scheme.lower() == "tel":
        return SipUri("tel", unquote(hostport), "", None, parse_params(params))
    user = None
    if "@" in hostport:
        userinfo, hostport = hostport.rsplit("@", 1)
        user = unquote(userinfo.split(":", 1)[0])
        if not user:
            raise ValueError(f"empty user part in {text[:60]!r}")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end == -1:
            raise ValueError(f"unterminated IPv6 reference in {text[:60]!r}")
        host, tail = hostport[:end + 1], hostport[end + 1:]
        port_text = tail[1:] if tail.startswith(":") else ("" if not tail else "x")
    else:
        host, _, port_text = hostport.partition(":")
    if not HOST.fullmatch(host):
        raise ValueError(f"invalid host {host[:60]!r}")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"invalid port {port_text[:10]!r}")
        port = int(port_text)
    return SipUri(scheme.lower(), user, host.lower(), port, parse_params(params))


@dataclass(frozen=True)
class NameAddr:
    display: str | None
    uri: str
    params: dict[str, str | None]

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


def _unquote_display(text: str) -> str:
    out, i = [], 1
    while i < len(text) - 1:
        if text[i] == "\\" and i + 1 < len(text) - 1:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def parse_name_addr(value: str) -> NameAddr:
    value = value.strip()
    display = None
    if value.startswith('"'):
        i, escaped = 1, False
        while i < len(value):
            ch = value[i]
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                break
            i += 1
        else:
            raise ValueError(f"unterminated display name in {value[:60]!r}")
        display = _unquote_display(value[:i + 1])
        value = value[i + 1:].strip()
    lt = value.find("<")
    if lt != -1:
        gt = value.find(">", lt)
        if gt == -1:
            raise ValueError(f"missing '>' in {value[:60]!r}")
        if display is None and value[:lt].strip():
            display = value[:lt].strip()
        uri = value[lt + 1:gt]
        params = parse_params(value[gt + 1:])
    else:
        uri, _, rest = value.partition(";")  # addr-spec: parameters belong to the header
        params = parse_params(rest)
    parse_uri(uri)  # validates
    return NameAddr(display, uri.strip(), params)


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")


def parse_via(value: str) -> Via:
    value = re.sub(r"\s*/\s*", "/", value.strip())  # LWS is allowed around the slashes
    proto, _, rest = value.partition(" ")
    parts = [p.strip() for p in proto.split("/")]
    if len(parts) != 3 or parts[0].upper() != "SIP":
        raise ValueError(f"malformed Via protocol {proto[:40]!r}")
    sent_by, _, params = rest.strip().partition(";")
    sent_by = sent_by.strip()
    if sent_by.startswith("["):
        end = sent_by.find("]")
        host, port_text = sent_by[:end + 1], sent_by[end + 2:] if end + 1 < len(sent_by) else ""
    else:
        host, _, port_text = sent_by.partition(":")
    host, port_text = host.strip(), port_text.strip()
    if not HOST.fullmatch(host):
        raise ValueError(f"invalid Via host {host[:60]!r}")
    if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
        raise ValueError(f"invalid Via port {port_text[:10]!r}")
    return Via(parts[2].upper(), host, int(port_text) if port_text else None, parse_params(params))


def parse_auth(value: str) -> tuple[str, dict[str, str]]:
    """`Digest a=b, c="d"` -> ("digest", {"a": "b", "c": "d"})."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for item in [p for p in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', rest) if p.strip()]:
        k, eq, v = item.strip().partition("=")
        if not eq:
            raise ValueError(f"malformed auth parameter {item[:40]!r}")
        v = v.strip()
        if v.startswith('"'):
            if len(v) < 2 or not v.endswith('"'):
                raise ValueError(f"unterminated quoted auth parameter {k!r}")
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[k.strip().lower()] = v
    return scheme.lower(), params


def multipart_parts(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Parts of a multipart body (RFC 2046): (headers, content) each."""
    m = re.search(r'boundary\s*=\s*"?([^";]+)"?', content_type, re.IGNORECASE)
    if not content_type.lower().startswith("multipart/") or not m:
        raise ValueError("not a multipart body with a boundary")
    delimiter = b"--" + m.group(1).encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3:
        raise ValueError("multipart body without its parts")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, content = b"", chunk
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        parts.append((headers, content[:-2] if content.endswith(b"\r\n") else content))
    return parts
