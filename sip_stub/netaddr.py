"""Which of our addresses a peer reaches: asked of the kernel's routing table, no packet sent."""
from __future__ import annotations

import functools
import socket


@functools.lru_cache(maxsize=1024)
def local_address_towards(peer_host: str) -> str:
    """The source address the kernel would use to reach `peer_host` (connect() on a UDP socket
    picks a route without sending anything). For SDP and Contact when bound to 0.0.0.0."""
    family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((peer_host, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1" if family == socket.AF_INET else "::1"
