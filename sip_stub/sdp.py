"""SDP offer/answer for G.711 phones (RFC 3264, RFC 4733 telephone-event), sans-io."""
from __future__ import annotations

import time
from dataclasses import dataclass

STATIC = {0: "PCMU", 8: "PCMA"}
PREFERRED = ("PCMU", "PCMA")


class SdpError(ValueError):
    pass


@dataclass(frozen=True)
class AudioOffer:
    address: str
    port: int
    codecs: dict[int, str]  # payload type -> encoding name (upper case)
    direction: str  # sendrecv | sendonly | recvonly | inactive

    @property
    def on_hold(self) -> bool:
        return self.direction in ("sendonly", "inactive") or self.address == "0.0.0.0"


@dataclass(frozen=True)
class Negotiated:
    payload_type: int
    codec: str  # PCMU | PCMA
    dtmf_payload_type: int | None
    remote: tuple[str, int]
    direction: str  # ours


def parse_offer(sdp: bytes) -> AudioOffer:
    try:
        text = sdp.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    session_addr = None
    media: list[dict] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"malformed m= line {value[:40]!r}")
            media.append({"kind": parts[0], "port": parts[1], "fmts": parts[3:], "rtpmap": {}, "addr": None,
                          "dir": None})
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError(f"malformed c= line {value[:40]!r}")
            if media:
                media[-1]["addr"] = parts[2]
            else:
                session_addr = parts[2]
        elif kind == "a" and media:
            if value.startswith("rtpmap:"):
                pt, _, enc = value[7:].partition(" ")
                media[-1]["rtpmap"][pt] = enc.split("/")[0].upper()
            elif value in ("sendrecv", "sendonly", "recvonly", "inactive"):
                media[-1]["dir"] = value
    audio = next((m for m in media if m["kind"] == "audio" and m["port"] != "0"), None)
    if audio is None:
        raise SdpError("no audio stream offered")
    addr = audio["addr"] or session_addr
    if addr is None:
        raise SdpError("no connection address")
    if not audio["port"].isdigit() or not 0 < int(audio["port"]) < 65536:
        raise SdpError(f"invalid audio port {audio['port']!r}")
    codecs: dict[int, str] = {}
    for fmt in audio["fmts"]:
        if not fmt.isdigit():
            raise SdpError(f"invalid payload type {fmt!r}")
        pt = int(fmt)
        name = audio["rtpmap"].get(fmt) or STATIC.get(pt)
        if name:
            codecs[pt] = name
    return AudioOffer(addr, int(audio["port"]), codecs, audio["dir"] or "sendrecv")


def negotiate(offer: AudioOffer) -> Negotiated:
    """The first G.711 codec in the offerer's order; telephone-event if offered."""
    pt = next((p for p, name in offer.codecs.items() if name in PREFERRED), None)
    if pt is None:
        raise SdpError("no codec in common: offer PCMU (0) or PCMA (8)")
    dtmf = next((p for p, name in offer.codecs.items() if name == "TELEPHONE-EVENT"), None)
    ours = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[offer.direction]
    if offer.address == "0.0.0.0":
        ours = "inactive"  # RFC 2543-style hold
    return Negotiated(pt, offer.codecs[pt], dtmf, (offer.address, offer.port), ours)


def answer(n: Negotiated, address: str, port: int, session_version: int | None = None) -> bytes:
    version = session_version if session_version is not None else int(time.time())
    fmts = f"{n.payload_type}" + (f" {n.dtmf_payload_type}" if n.dtmf_payload_type is not None else "")
    lines = ["v=0", f"o=confctl {version} {version} IN IP4 {address}", "s=confctl", f"c=IN IP4 {address}", "t=0 0",
             f"m=audio {port} RTP/AVP {fmts}", f"a=rtpmap:{n.payload_type} {n.codec}/8000"]
    if n.dtmf_payload_type is not None:
        lines += [f"a=rtpmap:{n.dtmf_payload_type} telephone-event/8000", f"a=fmtp:{n.dtmf_payload_type} 0-16"]
    lines += ["a=ptime:20", f"a={n.direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def offer(address: str, port: int, session_version: int | None = None) -> bytes:
    """Our offer for dial-out: PCMU, PCMA and telephone-event."""
    version = session_version if session_version is not None else int(time.time())
    return ("\r\n".join(["v=0", f"o=confctl {version} {version} IN IP4 {address}", "s=confctl",
                         f"c=IN IP4 {address}", "t=0 0", f"m=audio {port} RTP/AVP 0 8 101",
                         "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
                         "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv"]) + "\r\n").encode()
