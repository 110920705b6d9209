"""A lossy, delaying path for one real aiortc peer: fault injection at its UDP socket.

The kernel here has no `sch_netem` (tc netem is unavailable), so the impairment sits where the
peer's ICE connection hands datagrams to its socket: each one is dropped with probability `loss`
or sent after `delay_ms` ± `jitter_ms`, in order. Everything above (SRTP, RTCP, the node's receiver
statistics) is real; only the wire is replaced by a worse one. Switch it off with `clear()`.
"""
from __future__ import annotations

import asyncio
import random
from typing import Any

from aiortc import RTCPeerConnection

from media.aiortc_hooks import ice_protocols


class _ImpairedTransport:
    def __init__(self, inner: Any, path: "LossyPath"):
        self._inner, self._path = inner, path

    def sendto(self, data: bytes, addr: Any = None) -> None:
        p = self._path
        if p.loss and p.rng.random() < p.loss:
            p.dropped += 1
            return
        if not (p.delay_ms or p.jitter_ms):
            self._inner.sendto(data, addr)
            return
        loop = asyncio.get_running_loop()
        # A queue, as a real link is: delays vary but datagrams leave in order (no reordering).
        due = max(p.last_due, loop.time() + max(0.0, p.delay_ms + p.rng.uniform(-p.jitter_ms, p.jitter_ms)) / 1000)
        p.last_due = due
        loop.call_at(due, self._send, data, addr)

    def _send(self, data: bytes, addr: Any) -> None:
        if not self._inner.is_closing():
            self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class LossyPath:
    def __init__(self, pc: RTCPeerConnection, seed: int = 7):
        self.rng = random.Random(seed)
        self.loss = 0.0
        self.delay_ms = 0.0
        self.jitter_ms = 0.0
        self.dropped = 0
        self.last_due = 0.0
        protocols = ice_protocols(pc)
        if not protocols:
            raise RuntimeError("the peer has no socket yet: impair after ICE has gathered")
        for proto in protocols:
            if not isinstance(proto.transport, _ImpairedTransport):
                proto.transport = _ImpairedTransport(proto.transport, self)

    def impair(self, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0) -> None:
        self.loss, self.delay_ms, self.jitter_ms = loss, delay_ms, jitter_ms

    def clear(self) -> None:
        self.impair()
