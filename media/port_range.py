"""UDP ports a firewall can be told about: the range media sockets are bound in, and what is left.

A province's firewalls open one UDP range per media host (Janus `rtp_port_range`, mediasoup
`rtcMinPort`/`rtcMaxPort`); every socket a node opens for legs and trunks, and every RTP socket of
the SIP gateway, is bound in its range by `bind_udp`. Nothing here knows aiortc: media/aiortc_hooks.py
wires it into aioice's candidate gathering, sip_stub/gateway.py into its RTP sockets.
"""
from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field


class PortRangeExhausted(OSError):
    """Every port of the range is in use: the leg or call that asked is refused, in these words."""

    def __init__(self, ports: "PortRange", what: str):
        super().__init__(errno.EADDRINUSE, f"all {ports.size} UDP ports of {ports} are in use "
                         f"({what}); widen the range or end other calls")
        self.ports = ports


@dataclass(frozen=True)
class PortRange:
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if not 1024 <= self.lo <= self.hi <= 65535:
            raise ValueError(f"{self.lo}-{self.hi}: a port range is LO-HI with 1024 <= LO <= HI <= 65535")

    @classmethod
    def parse(cls, text: str) -> "PortRange":
        lo, sep, hi = text.strip().partition("-")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise ValueError(f"{text!r}: give a port range as LO-HI, e.g. 40000-40999")
        return cls(int(lo), int(hi))

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.lo <= port <= self.hi

    def __str__(self) -> str:
        return f"{self.lo}-{self.hi}"


@dataclass
class UdpPorts:
    """Binds UDP sockets in a range (or anywhere, with none), counting what was refused.

    The next bind starts after the last port taken, so a port just released is not reused at once
    (a late packet of an ended call would land on the new one)."""
    ports: PortRange | None = None
    refused: int = 0  # binds refused because the range was full, since this process started
    _next: int = field(default=0, repr=False)

    def bind_udp(self, host: str, what: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if self.ports is None:
            return _bound(family, host, 0)
        rng = self.ports
        for i in range(rng.size):
            port = rng.lo + (self._next + i) % rng.size
            try:
                sock = _bound(family, host, port)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            self._next = (port - rng.lo + 1) % rng.size
            return sock
        self.refused += 1
        raise PortRangeExhausted(rng, what)


def _bound(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
