"""A high-delay link's delay at an aiortc peer's own UDP sockets, both ways.

The emulated WAN delays satellite and mobile links with netem; a kernel without sch_netem cannot,
so a site agent behind such a link adds the link's one-way delay to every datagram its peer sends
and to every one it receives (the rate is still shaped by the kernel's TBF). A constant delay keeps
datagrams in order, as a link does. Everything above the socket (ICE, DTLS, SRTP, RTCP and the
node's statistics) is real and sees a 600 ms round trip.
"""
from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection

from media.aiortc_hooks import ice_protocols


class _DelayedTransport:
    def __init__(self, inner: Any, delay_s: float):
        self._inner, self._delay_s = inner, delay_s

    def sendto(self, data: bytes, addr: Any = None) -> None:
        asyncio.get_running_loop().call_later(self._delay_s, self._send, data, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if not self._inner.is_closing():
            self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def delay_sockets(pc: RTCPeerConnection, one_way_ms: float) -> int:
    """Delay what the peer sends and receives by `one_way_ms` each; call once ICE has gathered
    (after setLocalDescription). Returns how many sockets were wrapped."""
    protocols = ice_protocols(pc)
    delay_s = one_way_ms / 1000
    loop = asyncio.get_running_loop()
    for proto in protocols:
        if isinstance(proto.transport, _DelayedTransport):
            continue
        proto.transport = _DelayedTransport(proto.transport, delay_s)
        received = proto.datagram_received
        proto.datagram_received = lambda data, addr, received=received: loop.call_later(delay_s, received, data, addr)
    return len(protocols)
