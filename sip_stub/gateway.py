"""The conference gateway: phones dial a session's number and their audio joins its room.

An INVITE to a session's dial-in number, from an account whose site takes
part in the session, inside its window (± margin), is answered with G.711
SDP; the call's RTP is bridged into the media room (the phone's voice becomes
the site's audio; the phone hears a mix of everyone else). BYE, CANCEL and
re-INVITE (hold) end or change the call. Every leg gets a call record.

Calls also end without the phone: a watchdog (sip_stub/call_policy.py decides) sends BYE when
the session is over, cancelled or drops the site, when RTP stops, when an RFC 4028 session
timer runs out, when our 2xx is never ACKed, and on shutdown. Every refusal or failure gives
back what it took: the room (if it was opened for this call and is empty), the phone slot,
the RTP socket.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Awaitable, Callable

from media.port_range import PortRange, PortRangeExhausted, UdpPorts
from media.room import MediaRoom
from rooms.end_reason import EndReason
from supervision import TaskGroup
from sip_stub.call_policy import (DB_RETRY_AFTER_S, DEFAULT_RTP_TIMEOUT_S, MIN_SE_S, CallFacts, ConferenceFacts, end_reason,
                                  session_interval)
from sip_stub.fields import parse_name_addr, parse_uri
from sip_stub.netaddr import local_address_towards
from sip_stub.message import Request
from sip_stub.rtp_session import RtpSession
from sip_stub.builders import new_branch, new_tag
from sip_stub.dtmf import Command
from sip_stub.sdp import Negotiated, SdpError, answer, negotiate, parse_offer
from sip_stub.sdp import offer as sdp_offer
from sip_stub.calls import Call, Conference, Conferences, Outgoing, CallRejected
from sip_stub.transactions import InviteServerTransaction, Transaction

log = logging.getLogger("sip.gateway")
Blocking = Callable[..., Awaitable[Any]]
WATCH_S = 2.0  # how often the watchdog looks at every call
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


class Gateway:
    def __init__(self, conferences: Conferences, records: Any, blocking: Blocking, host: str,
                 advertise: str | None = None, rtp_timeout_s: float = DEFAULT_RTP_TIMEOUT_S, watch_s: float = WATCH_S,
                 rtp_ports: PortRange | None = None):
        self.conferences = conferences
        self.records = records  # rooms.store.calls.CallRecords (blocking calls)
        self.blocking = blocking
        self.host = host  # where RTP sockets bind (may be 0.0.0.0)
        self.advertise = advertise  # the address phones reach us at, if set (--sip-advertise)
        self.rtp_ports = UdpPorts(rtp_ports)  # --rtp-ports: the range a firewall opens for phones' RTP
        self.rtp_timeout_s = rtp_timeout_s
        self.watch_s = watch_s
        self.endpoint: Any = None  # the SIP endpoint, once it exists (attach)
        self.port = 0
        self.tasks = TaskGroup("SIP gateway")
        self.calls: dict[tuple[str, str], Call] = {}  # (Call-ID, our tag)
        self.pending: dict[tuple[str, ...], Request] = {}  # INVITE transactions not answered yet -> request
        self.outgoing: dict[int, Outgoing] = {}  # our dial-out INVITE transactions
        self.acks: dict[str, tuple[Request, tuple[str, int], Any]] = {}  # Call-ID -> the ACK we sent for its 2xx

    def attach(self, endpoint: Any, port: int) -> None:
        """The endpoint to send our own requests (BYE) through; starts the watchdog."""
        self.endpoint, self.port = endpoint, port
        self.tasks.keep_alive(self._watch, "call watchdog")

    def advertised(self, peer_host: str) -> str:
        """Our address for SDP and Contact as seen by a phone at peer_host: never 0.0.0.0."""
        if self.advertise:
            return self.advertise
        if self.host not in ("0.0.0.0", "::", ""):
            return self.host
        return local_address_towards(peer_host)

    # -- new calls ------------------------------------------------------------------
    async def invite(self, req: Request, tx: InviteServerTransaction, account: Any, respond: Callable[..., None],
                     local_port: int, local_tag: str, source: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        """An authenticated INVITE outside any dialog."""
        now = time.time()
        caller = req.header("From") or ""
        call: Call | None = None
        answered = False
        try:
            record_id = await self.blocking(self.records.start, req.header("Call-ID") or "", "in", caller[:200],
                                            int(now), account.username, account.site)
        except Exception as exc:  # the database failed: 500 at once, nothing taken yet
            log.error("INVITE %s: no call record: %r", req.header("Call-ID"), exc)
            self.pending.pop(tx.key, None)
            respond(tx, req, 500, "Server Internal Error (database)", [("Retry-After", str(DB_RETRY_AFTER_S))])
            return
        try:
            call = await self._admit(req, account, now, record_id, local_tag, source)
            if tx.key not in self.pending:
                # CANCELled while we looked things up: the 487 went out already
                await self._teardown(call, EndReason.CANCELLED, 487)
                return
            del self.pending[tx.key]
            call.invite_tx = tx
            headers = [("Contact", f"<sip:{parse_uri(req.uri).user}@{call.advertised}:{local_port}>"),
                       ("Content-Type", "application/sdp"), ("Allow", ALLOW), ("Supported", "timer")]
            headers += self._timer_headers(call)
            sdp = answer(call.rtp.media, call.advertised, call.rtp.port, call.sdp_version)
            respond(tx, req, 200, "OK", headers, body=sdp, to_tag=call.local_tag)
            answered = True
            call.rtp.answered()
            call.refreshed(time.monotonic())
            await self.blocking(self.records.update, record_id, answered_at=int(now), result_code=200, session_id=call.session_id)
            log.info("call %s: %s joined session %s by phone", call.call_id, call.site, call.session_id)
        except CallRejected as r:
            self.pending.pop(tx.key, None)
            respond(tx, req, r.status, r.reason, r.headers)
            await self._record_end(record_id, EndReason.REFUSED, r.status)
        except Exception:  # a fault of ours (database, sockets): the caller gets a 500, not 32 s of silence
            log.exception("INVITE %s failed", req.header("Call-ID"))
            self.pending.pop(tx.key, None)
            if answered and call is not None:
                await self.hang_up(call, EndReason.ERROR)  # the phone thinks it is connected: tell it
                return
            respond(tx, req, 500, "Server Internal Error")
            if call is not None:
                await self._teardown(call, EndReason.ERROR, 500)
            else:
                await self._record_end(record_id, EndReason.ERROR, 500)

    async def _record_end(self, record_id: int, reason: EndReason, code: int | None) -> None:
        fields: dict[str, Any] = {"ended_at": int(time.time()), "end_reason": reason.value}
        if code is not None:
            fields["result_code"] = code
        try:
            await self.blocking(self.records.update, record_id, **fields)
        except Exception as exc:  # the call is over either way; the record says so when the database is back
            log.error("call record %s not closed (%s): %r", record_id, reason.value, exc)

    @staticmethod
    def _timer_headers(call: Call) -> list[tuple[str, str]]:
        if call.session_interval is None:
            return []
        return [("Session-Expires", f"{call.session_interval};refresher=uac"), ("Require", "timer")]

    @staticmethod
    def _session_timer(req: Request) -> int | None:
        """RFC 4028 as a UAS whose phones refresh: the interval to enforce, None if not negotiated."""
        supported = {v.lower() for h in ("Supported", "Require") for v in req.values(h)}
        raw = req.header("Session-Expires")
        if raw is None or "timer" not in supported:
            return None  # the phone cannot refresh: RTP silence still ends a dead call
        if "refresher=uas" in raw.replace(" ", "").lower():
            return None  # we do not send refreshes ourselves: left unnegotiated (noted in the README)
        try:
            interval = session_interval(raw)
        except ValueError as exc:
            raise CallRejected(400, f"Bad Request ({exc})") from None
        if interval == "too_small":
            raise CallRejected(422, "Session Interval Too Small", [("Min-SE", str(MIN_SE_S))])
        return interval  # type: ignore[return-value]

    async def _open_rtp(self, room: MediaRoom, site: str, media: Negotiated) -> RtpSession:
        """A phone site's RTP port, wired to the room: its audio in, the room's mix out, its keypad."""
        def keypad(command: str) -> None:
            if command == Command.TOGGLE_MUTE:
                room.toggle_phone_mute(site)

        try:
            sock = self.rtp_ports.bind_udp(self.host or "0.0.0.0", "SIP RTP")
        except PortRangeExhausted as exc:
            log.warning("call refused: %s", exc)
            raise CallRejected(503, f"Service Unavailable (no RTP port free in {exc.ports})",
                         [("Retry-After", "30")]) from None
        try:
            _, rtp = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: RtpSession(media, lambda pcm: room.phone_audio(site, pcm), lambda: room.phone_mix(site), keypad),
                sock=sock)
        except BaseException:
            sock.close()
            raise
        return rtp

    async def _admit(self, req: Request, account: Any, now: float, record_id: int, local_tag: str,
                     source: tuple[str, int]) -> Call:
        number = parse_uri(req.uri).user or ""
        conf = await self.conferences.by_number(number)
        if conf is None:
            raise CallRejected(404, "Not Found")
        await self.blocking(self.records.update, record_id, session_id=conf.session_id)
        if not conf.active:
            raise CallRejected(404, "Not Found (session cancelled)")
        if account.site not in conf.sites:
            raise CallRejected(403, "Forbidden (your site is not in this session)")
        if not any(s <= now <= e for s, e in conf.windows):
            raise CallRejected(403, "Forbidden (outside the booked window)")
        # Everything the request alone decides, before a room, a slot or a socket is taken.
        try:
            media = negotiate(parse_offer(req.body))
        except SdpError as exc:
            raise CallRejected(488, f"Not Acceptable Here ({exc})") from None
        interval = self._session_timer(req)
        contact = req.header("Contact")
        try:
            remote_target = parse_name_addr(contact or req.header("From") or "").uri
        except ValueError as exc:
            raise CallRejected(400, f"Bad Request (Contact: {exc})") from None
        site = account.site
        room = await self.conferences.room(conf, site)
        if room.has_site(site):
            await self._release_if_empty(room, conf.session_id)
            raise CallRejected(486, "Busy Here (your site is already connected)")
        room.add_phone(site)
        try:
            rtp = await self._open_rtp(room, site, media)
        except BaseException:
            room.remove_phone(site)  # type: ignore[arg-type]
            await self._release_if_empty(room, conf.session_id)
            raise
        rtp.start()
        from_tag = parse_name_addr(req.header("From") or "").tag or ""
        to = req.header("To") or ""
        call = Call(req.header("Call-ID") or "", local_tag, from_tag, site, conf.session_id, room, rtp, record_id,
                    number=number, local_party=f"{to};tag={local_tag}", remote_party=req.header("From") or "",
                    remote_target=remote_target, advertised=self.advertised(source[0]), next_cseq=1,
                    session_interval=interval)
        self.calls[(call.call_id, call.local_tag)] = call
        return call

    async def _release_if_empty(self, room: MediaRoom, session_id: str) -> None:
        if room.empty:
            await self.conferences.release(session_id)

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

    def reinvite(self, call: Call, req: Request) -> tuple[bytes, list[tuple[str, str]]]:
        """Hold, resume or a session refresh: a new offer on the same dialog; our answer and headers."""
        media = negotiate(parse_offer(req.body))
        if req.header("Session-Expires") is not None:
            interval = self._session_timer(req)
            if interval is not None:
                call.session_interval = interval
        call.rtp.update(media)
        call.refreshed(time.monotonic())  # RFC 4028 §10: a re-INVITE refreshes the session
        call.sdp_version += 1
        return answer(media, call.advertised or self.host, call.rtp.port, call.sdp_version), self._timer_headers(call)

    async def bye(self, call: Call) -> None:
        await self._teardown(call, EndReason.BYE, None)

    async def hang_up(self, call: Call, reason: EndReason) -> None:
        """End a call from our side: BYE to the phone (sent once; the call is over for us either way)."""
        if call.ending:
            return
        call.ending = True
        if self.endpoint is not None and call.remote_target:
            try:
                target = parse_uri(call.remote_target)
                bye = Request(method="BYE", uri=call.remote_target, headers=[
                    ("Via", f"SIP/2.0/UDP {call.advertised or self.host}:{self.port};branch={new_branch()};rport"),
                    ("Max-Forwards", "70"), ("From", call.local_party), ("To", call.remote_party),
                    ("Call-ID", call.call_id), ("CSeq", f"{call.next_cseq} BYE"), ("Reason", f'SIP;text="{reason.value}"'),
                    ("Content-Length", "0")])
                call.next_cseq += 1
                self.endpoint.request(bye, (target.host, target.port or 5060))
            except Exception as exc:  # a phone we cannot address still loses its call
                log.warning("call %s: BYE not sent: %r", call.call_id, exc)
        log.info("call %s of %s ended by us: %s", call.call_id, call.site, reason.value)
        await self._teardown(call, reason, None)

    async def _teardown(self, call: Call, reason: EndReason, code: int | None) -> None:
        self.calls.pop((call.call_id, call.local_tag), None)
        self.acks.pop(call.call_id, None)
        await call.rtp.close()
        call.room.remove_phone(call.site)  # type: ignore[arg-type]
        await self._release_if_empty(call.room, call.session_id)
        await self._record_end(call.record_id, reason, code)

    # -- the watchdog ------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_s)
            await self.check_calls()

    async def check_calls(self) -> None:
        """End every call that call_policy says must end; one session lookup per number."""
        wall, mono = time.time(), time.monotonic()
        confs: dict[str, ConferenceFacts | None] = {}
        for call in list(self.calls.values()):
            if call.ending:
                continue
            if call.number not in confs:
                conf = await self.conferences.by_number(call.number) if call.number else None
                confs[call.number] = None if conf is None else ConferenceFacts(conf.active, conf.sites, conf.windows)
            facts = CallFacts(call.site, call.rtp.media.direction in ("sendrecv", "recvonly"), call.rtp.last_rx,
                              call.session_deadline)
            reason = end_reason(facts, confs[call.number], wall, mono, self.rtp_timeout_s)
            if reason is not None:
                await self.hang_up(call, reason)

    # -- dial-out -----------------------------------------------------------------------
    async def dial_out(self, conf: Conference, account: Any, contact: str, endpoint: Any, local_port: int,
                       dial_in: str) -> str:
        """INVITE a registered phone into a live session; returns the Call-ID. The outcome lands in its record."""
        target = parse_uri(contact)
        room = await self.conferences.room(conf, account.site)
        if room.has_site(account.site):
            await self._release_if_empty(room, conf.session_id)
            raise CallRejected(486, "the site is already connected")
        rtp: RtpSession | None = None
        try:
            # Media unknown until the phone answers: a placeholder the answer's SDP replaces.
            rtp = await self._open_rtp(room, account.site, Negotiated(0, "PCMU", None, ("0.0.0.0", 9), "sendrecv"))
            me = self.advertised(target.host)
            call_id = f"{secrets.token_hex(12)}@{me}"
            tag = new_tag()
            req = Request(method="INVITE", uri=contact, headers=[
                ("Via", f"SIP/2.0/UDP {me}:{local_port};branch={new_branch()};rport"),
                ("Max-Forwards", "70"), ("From", f"<sip:{dial_in}@{me}:{local_port}>;tag={tag}"),
                ("To", f"<sip:{account.username}@{me}>"), ("Call-ID", call_id), ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:{dial_in}@{me}:{local_port}>"), ("Supported", "timer"),
                ("Content-Type", "application/sdp"),
            ], body=sdp_offer(me, rtp.port))
            req.headers.append(("Content-Length", str(len(req.body))))
            record_id = await self.blocking(self.records.start, call_id, "out", f"<sip:{dial_in}@{me}>",
                                            int(time.time()), account.username, account.site, conf.session_id)
            pending = Outgoing(req, room, rtp, account.site, conf.session_id, record_id, tag, f"{me}:{local_port}",
                               endpoint, dial_in)
            tx = endpoint.request(req, (target.host, target.port or 5060))
        except BaseException:  # nothing is left behind: the socket closes, an empty room goes
            if rtp is not None:
                await rtp.close()
            await self._release_if_empty(room, conf.session_id)
            raise
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
            return await self._failed(out, resp.status, EndReason.REFUSED)
        req = out.request
        remote_tag = parse_name_addr(resp.header("To") or "").tag or ""
        contact = parse_name_addr(resp.header("Contact") or f"<{req.uri}>").uri
        target = parse_uri(contact)
        ack = Request(method="ACK", uri=contact, headers=[
            ("Via", f"SIP/2.0/UDP {out.via};branch={new_branch()};rport"),
            ("Max-Forwards", "70"), ("From", req.header("From") or ""), ("To", resp.header("To") or ""),
            ("Call-ID", req.header("Call-ID") or ""), ("CSeq", "1 ACK"), ("Content-Length", "0")])
        dest = (target.host, target.port or 5060)
        out.endpoint.send_direct(ack, dest)  # the ACK for a 2xx is the UAC core's, outside any transaction
        self.acks[req.header("Call-ID") or ""] = (ack, dest, out.endpoint)
        try:
            media = negotiate(parse_offer(resp.body))
        except SdpError:
            return await self._failed(out, 488, EndReason.NOT_ACCEPTABLE)
        out.rtp.update(media)
        out.room.add_phone(out.site)  # type: ignore[arg-type]
        out.rtp.start()
        out.rtp.answered()
        call = Call(req.header("Call-ID") or "", out.local_tag, remote_tag, out.site, out.session_id, out.room,
                    out.rtp, out.record_id, confirmed=True, number=out.number, local_party=req.header("From") or "",
                    remote_party=resp.header("To") or "", remote_target=contact, advertised=out.via.rsplit(":", 1)[0],
                    next_cseq=2)
        self.calls[(call.call_id, call.local_tag)] = call
        await self.blocking(self.records.update, out.record_id, answered_at=now, result_code=resp.status)

    async def _failed(self, out: Outgoing, code: int, reason: EndReason) -> None:
        await out.rtp.close()
        await self._release_if_empty(out.room, out.session_id)
        await self._record_end(out.record_id, reason, code)

    def reack(self, resp: Any) -> None:
        """The callee retransmitted its 2xx: our ACK was lost, send it again."""
        sent = self.acks.get(resp.header("Call-ID") or "")
        if sent is not None:
            ack, dest, endpoint = sent
            endpoint.send_direct(ack, dest)

    async def on_timeout(self, tx: Transaction) -> None:
        out = self.outgoing.pop(id(tx), None)
        if out is not None:
            await self._failed(out, 408, EndReason.NO_ANSWER)
            return
        for call in list(self.calls.values()):
            if call.invite_tx is tx and not call.confirmed:  # our 2xx was never ACKed (§13.3.1.4)
                await self.hang_up(call, EndReason.NO_ACK)

    def cancel(self, key: tuple[str, ...]) -> Request | None:
        """A CANCEL for a pending INVITE: returns it (to be answered 487) if it was still pending."""
        return self.pending.pop(key, None)

    async def close(self) -> None:
        """Shutdown: every call gets its BYE (while the endpoint is still open) and a closed record."""
        await self.tasks.close()
        for call in list(self.calls.values()):
            await self.hang_up(call, EndReason.SHUTDOWN)
        for out in list(self.outgoing.values()):
            await self._failed(out, 487, EndReason.SHUTDOWN)
        self.outgoing.clear()
