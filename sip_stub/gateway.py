"""The conference gateway: phones dial a session's number and their audio joins its room.

An INVITE to a session's dial-in number, from an account whose site takes
part in the session, inside its window (± margin), is answered with G.711
SDP; the call's RTP is bridged into the media room (the phone's voice becomes
the site's audio; the phone hears a mix of everyone else). BYE, CANCEL and
re-INVITE (hold) end or change the call. Every leg gets a call record.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from media.room import MediaRoom
from sip_stub.fields import parse_name_addr, parse_uri
from sip_stub.message import Request
from sip_stub.rtp_session import RtpSession
from sip_stub.builders import new_branch, new_tag
from sip_stub.dtmf import Command
from sip_stub.sdp import Negotiated, SdpError, answer, negotiate, parse_offer
from sip_stub.sdp import offer as sdp_offer
from sip_stub.transactions import InviteServerTransaction, Transaction

log = logging.getLogger("sip.gateway")
Blocking = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Conference:
    session_id: str
    host: str
    sites: frozenset[str]
    windows: tuple[tuple[float, float], ...]  # epoch seconds, margin included
    active: bool


class Conferences(Protocol):
    """What the control plane provides: sessions by number, and their rooms."""

    async def by_number(self, number: str) -> Conference | None: ...
    def room(self, session_id: str, host: str) -> MediaRoom: ...
    async def release(self, session_id: str) -> None: ...


@dataclass(eq=False)
class Call:
    call_id: str
    local_tag: str
    remote_tag: str
    site: str
    session_id: str
    room: MediaRoom
    rtp: RtpSession
    record_id: int
    invite_tx: InviteServerTransaction | None = None
    confirmed: bool = False
    sdp_version: int = field(default_factory=lambda: int(time.time()))


@dataclass(eq=False)
class Outgoing:
    """A dial-out INVITE waiting for its final response."""

    request: Request
    room: MediaRoom
    rtp: RtpSession
    site: str
    session_id: str
    record_id: int
    local_tag: str
    via: str  # our host:port, for the ACK
    endpoint: Any


class Refuse(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class Gateway:
    def __init__(self, conferences: Conferences, records: Any, blocking: Blocking, host: str):
        self.conferences = conferences
        self.records = records  # rooms.store.calls.CallRecords (blocking calls)
        self.blocking = blocking
        self.host = host
        self.calls: dict[tuple[str, str], Call] = {}  # (Call-ID, our tag)
        self.pending: dict[tuple[str, ...], Request] = {}  # INVITE transactions not answered yet -> request
        self.outgoing: dict[int, Outgoing] = {}  # our dial-out INVITE transactions
        self.acks: dict[str, tuple[Request, tuple[str, int], Any]] = {}  # Call-ID -> the ACK we sent for its 2xx

    # -- new calls ------------------------------------------------------------------
    async def invite(self, req: Request, tx: InviteServerTransaction, account: Any, respond: Callable[..., None],
                     local_port: int, local_tag: str) -> None:
        """An authenticated INVITE outside any dialog."""
        now = time.time()
        caller = req.header("From") or ""
        record_id = await self.blocking(self.records.start, req.header("Call-ID") or "", "in", caller[:200], int(now),
                                        account.username, account.site)
        answered = False
        try:
            call = await self._admit(req, account, now, record_id, local_tag)
            if tx.key not in self.pending:
                # CANCELled while we looked things up: the 487 went out already
                await self._teardown(call, "cancelled", 487)
                return
            del self.pending[tx.key]
            call.invite_tx = tx
            sdp = answer(call.rtp.media, self.host, call.rtp.port, call.sdp_version)
            respond(tx, req, 200, "OK", [("Contact", f"<sip:{parse_uri(req.uri).user}@{self.host}:{local_port}>"),
                                         ("Content-Type", "application/sdp"), ("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")],
                    body=sdp, to_tag=call.local_tag)
            answered = True
            await self.blocking(self.records.update, record_id, answered_at=int(now), result_code=200, session_id=call.session_id)
            log.info("call %s: %s joined session %s by phone", call.call_id, call.site, call.session_id)
        except Refuse as r:
            self.pending.pop(tx.key, None)
            respond(tx, req, r.status, r.reason)
            await self.blocking(self.records.update, record_id, ended_at=int(time.time()), result_code=r.status,
                                end_reason="refused")
        except Exception:  # a fault of ours (database, sockets): the caller gets a 500, not 32 s of silence
            log.exception("INVITE %s failed", req.header("Call-ID"))
            self.pending.pop(tx.key, None)
            if not answered:
                respond(tx, req, 500, "Server Internal Error")
                await self.blocking(self.records.update, record_id, ended_at=int(time.time()), result_code=500,
                                    end_reason="error")

    async def _open_rtp(self, room: MediaRoom, site: str, media: Negotiated) -> RtpSession:
        """A phone site's RTP port, wired to the room: its audio in, the room's mix out, its keypad."""
        def keypad(command: str) -> None:
            if command == Command.TOGGLE_MUTE:
                room.toggle_phone_mute(site)

        _, rtp = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: RtpSession(media, lambda pcm: room.phone_audio(site, pcm), lambda: room.phone_mix(site), keypad),
            local_addr=(self.host, 0))
        return rtp

    async def _admit(self, req: Request, account: Any, now: float, record_id: int, local_tag: str) -> Call:
        number = parse_uri(req.uri).user or ""
        conf = await self.conferences.by_number(number)
        if conf is None:
            raise Refuse(404, "Not Found")
        await self.blocking(self.records.update, record_id, session_id=conf.session_id)
        if not conf.active:
            raise Refuse(404, "Not Found (session cancelled)")
        if account.site not in conf.sites:
            raise Refuse(403, "Forbidden (your site is not in this session)")
        if not any(s <= now <= e for s, e in conf.windows):
            raise Refuse(403, "Forbidden (outside the booked window)")
        room = self.conferences.room(conf.session_id, conf.host)
        if account.site in room.phones or account.site in room.legs:
            raise Refuse(486, "Busy Here (your site is already connected)")
        try:
            media = negotiate(parse_offer(req.body))
        except SdpError as exc:
            raise Refuse(488, f"Not Acceptable Here ({exc})") from None
        site = account.site
        room.add_phone(site)
        rtp = await self._open_rtp(room, site, media)
        rtp.start()
        from_tag = parse_name_addr(req.header("From") or "").tag or ""
        call = Call(req.header("Call-ID") or "", local_tag, from_tag, site, conf.session_id, room, rtp, record_id)
        self.calls[(call.call_id, call.local_tag)] = call
        return call

    # -- in dialog ------------------------------------------------------------------
    def find(self, req: Request) -> Call | None:
        to_tag = parse_name_addr(req.header("To") or "").tag
        return self.calls.get((req.header("Call-ID") or "", to_tag or ""))

    def ack(self, req: Request) -> Transaction | None:
        call = self.find(req)
        if call is None:
            return None
        call.confirmed = True
        return call.invite_tx

    def reinvite(self, call: Call, req: Request) -> bytes:
        """Hold or resume: a new offer on the same dialog; returns our answer."""
        media = negotiate(parse_offer(req.body))
        call.rtp.update(media)
        call.sdp_version += 1
        return answer(media, self.host, call.rtp.port, call.sdp_version)

    async def bye(self, call: Call) -> None:
        await self._teardown(call, "bye", None)

    async def _teardown(self, call: Call, reason: str, code: int | None) -> None:
        self.calls.pop((call.call_id, call.local_tag), None)
        self.acks.pop(call.call_id, None)
        await call.rtp.close()
        call.room.remove_phone(call.site)  # type: ignore[arg-type]
        if not call.room.legs and not call.room.phones:
            await self.conferences.release(call.session_id)
        fields: dict[str, Any] = {"ended_at": int(time.time()), "end_reason": reason}
        if code is not None:
            fields["result_code"] = code
        await self.blocking(self.records.update, call.record_id, **fields)

    # -- dial-out -----------------------------------------------------------------------
    async def dial_out(self, conf: Conference, account: Any, contact: str, endpoint: Any, local_port: int,
                       dial_in: str) -> str:
        """INVITE a registered phone into a live session; returns the Call-ID. The outcome lands in its record."""
        room = self.conferences.room(conf.session_id, conf.host)
        if account.site in room.phones or account.site in room.legs:
            raise Refuse(486, "the site is already connected")
        target = parse_uri(contact)
        # Media unknown until the phone answers: a placeholder the answer's SDP replaces.
        rtp = await self._open_rtp(room, account.site, Negotiated(0, "PCMU", None, ("0.0.0.0", 9), "sendrecv"))
        call_id = f"{secrets.token_hex(12)}@{self.host}"
        tag = new_tag()
        req = Request(method="INVITE", uri=contact, headers=[
            ("Via", f"SIP/2.0/UDP {self.host}:{local_port};branch={new_branch()};rport"),
            ("Max-Forwards", "70"), ("From", f"<sip:{dial_in}@{self.host}:{local_port}>;tag={tag}"),
            ("To", f"<sip:{account.username}@{self.host}>"), ("Call-ID", call_id), ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:{dial_in}@{self.host}:{local_port}>"), ("Content-Type", "application/sdp"),
        ], body=sdp_offer(self.host, rtp.port))
        req.headers.append(("Content-Length", str(len(req.body))))
        record_id = await self.blocking(self.records.start, call_id, "out", f"<sip:{dial_in}@{self.host}>",
                                        int(time.time()), account.username, account.site, conf.session_id)
        pending = Outgoing(req, room, rtp, account.site, conf.session_id, record_id, tag, f"{self.host}:{local_port}",
                           endpoint)
        tx = endpoint.request(req, (target.host, target.port or 5060))
        self.outgoing[id(tx)] = pending
        return call_id

    async def on_response(self, resp: Any, tx: Transaction) -> None:
        """A response to one of our dial-out INVITEs."""
        out = self.outgoing.get(id(tx))
        if out is None or resp.status < 200:
            return
        del self.outgoing[id(tx)]
        now = int(time.time())
        if resp.status >= 300:
            return await self._failed(out, resp.status, "refused")
        req = out.request
        remote_tag = parse_name_addr(resp.header("To") or "").tag or ""
        contact = parse_name_addr(resp.header("Contact") or f"<{req.uri}>").uri
        target = parse_uri(contact)
        ack = Request(method="ACK", uri=contact, headers=[
            ("Via", f"SIP/2.0/UDP {out.via};branch={new_branch()};rport"),
            ("Max-Forwards", "70"), ("From", req.header("From") or ""), ("To", resp.header("To") or ""),
            ("Call-ID", req.header("Call-ID") or ""), ("CSeq", "1 ACK"), ("Content-Length", "0")])
        dest = (target.host, target.port or 5060)
        out.endpoint._send(ack, dest)  # the ACK for a 2xx is the UAC core's, outside any transaction
        self.acks[req.header("Call-ID") or ""] = (ack, dest, out.endpoint)
        try:
            media = negotiate(parse_offer(resp.body))
        except SdpError:
            return await self._failed(out, 488, "bad answer")
        out.rtp.update(media)
        out.room.add_phone(out.site)  # type: ignore[arg-type]
        out.rtp.start()
        call = Call(req.header("Call-ID") or "", out.local_tag, remote_tag, out.site, out.session_id, out.room,
                    out.rtp, out.record_id, confirmed=True)
        self.calls[(call.call_id, call.local_tag)] = call
        await self.blocking(self.records.update, out.record_id, answered_at=now, result_code=resp.status)

    async def _failed(self, out: Outgoing, code: int, reason: str) -> None:
        await out.rtp.close()
        await self.blocking(self.records.update, out.record_id, ended_at=int(time.time()), result_code=code,
                            end_reason=reason)

    def reack(self, resp: Any) -> None:
        """The callee retransmitted its 2xx: our ACK was lost, send it again."""
        sent = self.acks.get(resp.header("Call-ID") or "")
        if sent is not None:
            ack, dest, endpoint = sent
            endpoint._send(ack, dest)

    async def on_timeout(self, tx: Transaction) -> None:
        out = self.outgoing.pop(id(tx), None)
        if out is not None:
            await self._failed(out, 408, "no answer")

    def cancel(self, key: tuple[str, ...]) -> Request | None:
        """A CANCEL for a pending INVITE: returns it (to be answered 487) if it was still pending."""
        return self.pending.pop(key, None)

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self._teardown(call, "shutdown", None)
