"""A scripted SIP phone for tests: INVITE with digest, ACK, G.711 RTP both ways, BYE."""
from __future__ import annotations

import asyncio
import audioop
import hashlib
import math
import random
from array import array

from sip_stub.fields import parse_auth
from sip_stub.message import Response, parse_message
from sip_stub.rtp import RtpPacket, parse_rtp
from tests.sip.udp_client import UdpClient, udp_client


def tone(seq: int, hz: float = 1000, amp: int = 9000) -> bytes:
    return array("h", (int(amp * math.sin(2 * math.pi * hz * (seq * 160 + i) / 8000)) for i in range(160))).tobytes()


class Phone:
    def __init__(self, user: str, password: str, server_port: int):
        self.user, self.password, self.server = user, password, server_port
        self.call_id = f"call-{random.getrandbits(32)}"
        self.cseq = 0
        self.to_tag: str | None = None
        self.heard_energy = 0
        self.packets_heard = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> "Phone":
        self.sip: UdpClient = await udp_client()
        self.rtp: UdpClient = await udp_client()
        return self

    def _request(self, method: str, uri: str, branch: str, extra: str = "", body: bytes = b"", cseq: int | None = None) -> bytes:
        to = f"<{uri}>" + (f";tag={self.to_tag}" if self.to_tag and method != "INVITE" or (self.to_tag and cseq) else "")
        head = (f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch={branch};rport\r\n"
                f"From: <sip:{self.user}@127.0.0.1>;tag=ph1\r\nTo: {to}\r\nCall-ID: {self.call_id}\r\n"
                f"CSeq: {cseq or self.cseq} {method}\r\nContact: <sip:{self.user}@127.0.0.1:{self.sip.port}>\r\n"
                f"Max-Forwards: 70\r\n{extra}")
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def final(self, method: str | None = None) -> Response:
        """The next final response (to `method`, when given; others are skipped)."""
        while True:
            msg = parse_message(await self.sip.recv())
            if isinstance(msg, Response) and msg.status >= 200 and (method is None or msg.cseq()[1] == method):
                return msg

    def sdp(self) -> bytes:
        return (f"v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {self.rtp.port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n").encode()

    async def call(self, number: str) -> Response:
        uri = f"sip:{number}@127.0.0.1:{self.server}"
        self.cseq += 1
        self.sip.send(self._request("INVITE", uri, f"z9hG4bKinv{self.cseq}", body=self.sdp()), self.server)
        challenge = await self.final("INVITE")
        if challenge.status != 401:
            return challenge
        self.sip.send(self._ack(uri, f"z9hG4bKinv{self.cseq}", challenge), self.server)  # ACK for the 401
        c = parse_auth(next(v for v in challenge.header_all("WWW-Authenticate") if "MD5" in v))[1]
        h = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        ha1, ha2 = h(f"{self.user}:{c['realm']}:{self.password}"), h(f"INVITE:{uri}")
        response = h(f"{ha1}:{c['nonce']}:00000001:xyz:auth:{ha2}")
        auth = (f'Authorization: Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
                f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz"\r\n')
        self.cseq += 1
        self.sip.send(self._request("INVITE", uri, f"z9hG4bKinv{self.cseq}", auth, self.sdp()), self.server)
        final = await self.final("INVITE")
        if final.status == 200:
            self.to_tag = final.header("To").split("tag=")[1].split(";")[0]
            self.sip.send(self._request("ACK", uri, f"z9hG4bKack{self.cseq}", cseq=self.cseq), self.server)
            self.uri = uri
            media = final.body.decode()
            port = int(next(l for l in media.splitlines() if l.startswith("m=audio")).split()[1])
            self._tasks = [asyncio.create_task(self._talk(port)), asyncio.create_task(self._listen())]
        return final

    def _ack(self, uri: str, branch: str, resp: Response) -> bytes:
        return (f"ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch={branch};rport\r\n"
                f"From: <sip:{self.user}@127.0.0.1>;tag=ph1\r\nTo: {resp.header('To')}\r\nCall-ID: {self.call_id}\r\n"
                f"CSeq: {self.cseq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()

    async def _talk(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        due, seq = loop.time(), 0
        while True:
            pkt = RtpPacket(0, seq, seq * 160, 1234, audioop.lin2ulaw(tone(seq), 2))
            self.rtp.send(bytes(pkt), port)
            seq += 1
            due += 0.02
            await asyncio.sleep(max(0.0, due - loop.time()))

    async def _listen(self) -> None:
        while True:
            pkt = parse_rtp(await self.rtp.inbox.get())
            self.packets_heard += 1
            self.heard_energy += audioop.rms(audioop.ulaw2lin(pkt.payload, 2), 2)

    async def hang_up(self) -> Response:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.cseq += 1
        self.sip.send(self._request("BYE", self.uri, f"z9hG4bKbye{self.cseq}"), self.server)
        return await self.final()

    def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.sip.transport.close()
        self.rtp.transport.close()


class Callee(Phone):
    """A registered phone that answers the conference calling it (dial-out)."""

    async def register(self) -> Response:
        uri = f"sip:127.0.0.1:{self.server}"
        def req(cseq: int, auth: str = "") -> bytes:
            return (f"REGISTER {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch=z9hG4bKreg{cseq}\r\n"
                    f"From: <sip:{self.user}@127.0.0.1>;tag=r1\r\nTo: <sip:{self.user}@127.0.0.1>\r\nCall-ID: reg-{self.call_id}\r\n"
                    f"CSeq: {cseq} REGISTER\r\nContact: <sip:{self.user}@127.0.0.1:{self.sip.port}>\r\nExpires: 300\r\n"
                    f"Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n").encode()
        self.sip.send(req(1), self.server)
        c = parse_auth((await self.final()).header("WWW-Authenticate"))[1]
        h = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        realm, nonce = c["realm"], c["nonce"]
        ha1, ha2 = h(f"{self.user}:{realm}:{self.password}"), h(f"REGISTER:{uri}")
        resp = h(f"{ha1}:{nonce}:00000001:c1:auth:{ha2}")
        self.sip.send(req(2, f'Authorization: Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
                             f'uri="{uri}", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c1"\r\n'),
                      self.server)
        return await self.final()

    async def answer_incoming(self) -> None:
        from sip_stub.builders import make_response
        from sip_stub.message import Request
        while True:
            invite = parse_message(await self.sip.recv(10))
            if isinstance(invite, Request) and invite.method == "INVITE":
                break
        self.incoming = invite
        self.to_tag = None
        media = invite.body.decode()
        port = int(next(l for l in media.splitlines() if l.startswith("m=audio")).split()[1])
        sdp = (f"v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {self.rtp.port} RTP/AVP 0\r\na=sendrecv\r\n").encode()
        ok = make_response(invite, 200, "OK", [("Contact", f"<sip:{self.user}@127.0.0.1:{self.sip.port}>"),
                                               ("Content-Type", "application/sdp")], body=sdp, to_tag="callee1")
        self.last_ok = bytes(ok)
        self.sip.send(self.last_ok, self.server)
        while True:
            ack = parse_message(await self.sip.recv(10))
            if isinstance(ack, Request) and ack.method == "ACK":
                break
        self._tasks = [asyncio.create_task(self._talk(port)), asyncio.create_task(self._listen())]

    async def hang_up_incoming(self) -> Response:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        inv = self.incoming
        contact = inv.header("Contact").strip("<>")
        bye = (f"BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{self.sip.port};branch=z9hG4bKbyeout\r\n"
               f"From: {inv.header('To')};tag=callee1\r\nTo: {inv.header('From')}\r\nCall-ID: {inv.header('Call-ID')}\r\n"
               f"CSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        self.sip.send(bye, self.server)
        return await self.final()


async def reinvite(phone: Phone, direction: str) -> Response:
    """Put the call on hold (sendonly) or resume it (sendrecv) with a re-INVITE."""
    phone.cseq += 1
    sdp = phone.sdp().replace(b"a=sendrecv", f"a={direction}".encode())
    phone.sip.send(phone._request("INVITE", phone.uri, f"z9hG4bKre{phone.cseq}", body=sdp, cseq=phone.cseq), phone.server)
    final = await phone.final()
    phone.sip.send(phone._request("ACK", phone.uri, f"z9hG4bKreack{phone.cseq}", cseq=phone.cseq), phone.server)
    return final
