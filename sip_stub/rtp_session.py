"""One phone call's RTP: G.711 in and out on a UDP port, paced at 20 ms, owned and closed by its call."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable

from sip_stub.dtmf import DtmfReceiver, Keypad
from sip_stub.rtp import RtpPacket, decode_g711, encode_g711, parse_rtp
from sip_stub.sdp import Negotiated

log = logging.getLogger("sip.rtp")
PTIME = 0.020
SAMPLES = 160


class RtpSession(asyncio.DatagramProtocol):
    def __init__(self, media: Negotiated, on_pcm: Callable[[bytes], None], pull_pcm: Callable[[], bytes],
                 on_command: Callable[[str], None] = lambda _command: None):
        self.media = media
        self.on_pcm = on_pcm
        self.pull_pcm = pull_pcm
        self.on_command = on_command  # a keypad command (sip_stub/dtmf.py), e.g. "*6" to mute
        self.dtmf = DtmfReceiver()
        self.keypad = Keypad()
        self.transport: asyncio.DatagramTransport | None = None
        self._sender: asyncio.Task[None] | None = None
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.packets_in = self.packets_out = self.bad_packets = 0
        self.last_rx = time.monotonic()  # the last RTP packet from the phone (or when the call was answered)

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_loop())

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            pkt = parse_rtp(data)
        except ValueError:
            self.bad_packets += 1
            return
        self.last_rx = time.monotonic()  # any RTP of the call's, key presses too: the phone is alive
        if pkt.payload_type == self.media.dtmf_payload_type:
            try:
                digit = self.dtmf.feed(pkt.timestamp, pkt.payload)
            except ValueError:
                self.bad_packets += 1
                return
            if digit is not None:
                command = self.keypad.press(digit)
                if command is not None:
                    self.on_command(command)
            return
        if pkt.payload_type != self.media.payload_type:
            return  # anything else: not audio for the room
        self.packets_in += 1
        pcm = decode_g711(self.media.codec, pkt.payload)
        if self.media.direction in ("sendrecv", "recvonly"):
            self.on_pcm(pcm)

    def answered(self) -> None:
        """The call was answered: its RTP silence is counted from now."""
        self.last_rx = time.monotonic()

    def update(self, media: Negotiated) -> None:
        """A re-INVITE changed the media (hold, resume, new address)."""
        self.media = media

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += PTIME
            pcm = self.pull_pcm()
            if self.media.direction in ("sendrecv", "sendonly") and self.transport is not None:
                pkt = RtpPacket(self.media.payload_type, self.seq, self.ts, self.ssrc, encode_g711(self.media.codec, pcm))
                self.transport.sendto(bytes(pkt), self.media.remote)
                self.packets_out += 1
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + SAMPLES) & 0xFFFFFFFF
            await asyncio.sleep(max(0.0, due - loop.time()))  # paced on the loop clock: no drift

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self.transport is not None:
            self.transport.close()
