"""A minimal UDP SIP client for tests: send raw bytes, read raw datagrams (no sleeping)."""
from __future__ import annotations

import asyncio


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
        self.inbox.put_nowait(data)

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]

    def send(self, data: bytes, port: int) -> None:
        self.transport.sendto(data, ("127.0.0.1", port))  # type: ignore[union-attr]

    async def recv(self, timeout: float = 5) -> bytes:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def nothing_within(self, seconds: float) -> bool:
        """True if no datagram arrives within `seconds` (for 'must not be answered' checks)."""
        try:
            await asyncio.wait_for(self.inbox.get(), seconds)
            return False
        except asyncio.TimeoutError:
            return True


async def udp_client() -> UdpClient:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
    return proto
