"""UDP transport and transaction layer: parse, route by transaction, delegate to the core.

The datagram protocol stays thin: a datagram that does not parse is logged
and dropped; a request missing what every request needs gets a 400; a
response that matches no client transaction is ignored, never answered.
Responses go where RFC 3261 §18.2.2 and RFC 3581 say: the `received`
address and `rport` port recorded on the top Via.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Protocol

from sip_stub.builders import MAGIC, make_ack_for, make_response
from sip_stub.fields import Via, parse_via
from sip_stub.message import FramingError, Request, Response, parse_message
from sip_stub.transactions import (Action, ClientTransaction, InviteClientTransaction, InviteServerTransaction, Send,
                                   ServerTransaction, StartTimer, State, StopTimer, TimedOut, ToTU, Transaction)

log = logging.getLogger("sip.endpoint")
Addr = tuple[str, int]
MANDATORY = ("via", "from", "to", "call-id", "cseq")
SINGLETONS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires")
SOCKET_BUFFER = 8 * 1024 * 1024


class Core(Protocol):
    """What the endpoint delegates to: the registrar, the gateway, OPTIONS..."""

    def stateless_answer(self, req: Request) -> Response | None: ...
    def on_request(self, req: Request, tx: Transaction, source: Addr) -> None: ...
    def on_ack(self, req: Request, source: Addr) -> None: ...
    def on_response(self, resp: Response, tx: Transaction) -> None: ...
    def on_timeout(self, tx: Transaction) -> None: ...
    def on_2xx_retransmission(self, resp: Response) -> None: ...


def response_destination(resp: Response) -> Addr | None:
    """§18.2.2 for UDP: `received` (else sent-by host), `rport` (else sent-by port, else 5060)."""
    top = resp.header("Via")
    if top is None:
        return None
    via = parse_via(top.split(",")[0])
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    port = int(rport) if rport and rport.isdigit() else (via.port or 5060)
    return host.strip("[]"), port


def _stamp_via(req: Request, source: Addr, via: Via) -> Addr:
    """Record where the request came from on its top Via (received; rport if asked for).

    Returns where responses go (§18.2.2, RFC 3581).
    """
    received = via.host.strip("[]") != source[0] and "received" not in via.params
    rport = "rport" in via.params and via.params["rport"] is None
    if received or rport:
        for i, (name, value) in enumerate(req.headers):
            if name.lower() in ("via", "v"):
                first, sep, rest = value.partition(",")
                stamped = first.rstrip() + (f";received={source[0]}" if received else "")
                if rport:
                    stamped = stamped.replace(";rport", f";rport={source[1]}", 1)
                req.headers[i] = (name, stamped + (sep + rest if sep else ""))
                break
    host = via.params.get("received") or (source[0] if received else via.host.strip("[]"))
    given = via.params.get("rport")
    port = source[1] if rport else (int(given) if given and given.isdigit() else (via.port or 5060))
    return host, port


def server_key(req: Request, via: Via) -> tuple[str, ...]:
    method = "INVITE" if req.method == "ACK" else req.method
    branch = via.branch or ""
    if branch.startswith(MAGIC):
        return (branch, f"{via.host}:{via.port or 5060}", method)
    # RFC 2543 peers: match on the request's identity instead (§17.2.3, simplified)
    return (req.header("Call-ID") or "", req.header("From") or "", str(req.cseq()[0]), method)


class SipEndpoint(asyncio.DatagramProtocol):
    def __init__(self, core: Core):
        self.core = core
        self.transport: asyncio.DatagramTransport | None = None
        self.server_tx: dict[tuple[str, ...], Transaction] = {}
        self.client_tx: dict[tuple[str, ...], Transaction] = {}
        # timers by transaction, then by name: forgetting a transaction touches only its own timers
        # (a scan of all timers made a registration storm quadratic: 100 % CPU for minutes afterwards)
        self._timers: dict[int, dict[str, asyncio.TimerHandle]] = {}
        self._dest: dict[int, Addr] = {}  # client transaction -> where its requests go
        self.stats = {"received": 0, "dropped": 0, "bad_request": 0, "stray_responses": 0, "stateless": 0,
                      "auth_failed": 0, "auth_throttled": 0, "auth_replayed": 0, "db_errors": 0}

    # -- asyncio ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Bursts of registrations overflow the default receive buffer; every datagram the kernel drops
            # costs the phone a 500 ms retransmission. The kernel caps this at net.core.rmem_max.
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
                except OSError:
                    pass

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.stats["received"] += 1
        try:
            msg = parse_message(data)
        except FramingError as exc:
            # The head is readable but the body's end is not: refuse at once, never act on it.
            self.stats["bad_request"] += 1
            if isinstance(exc.message, Request) and exc.message.method != "ACK" and exc.message.header("Via"):
                try:
                    self.send_direct(make_response(exc.message, 400, f"Bad Request ({exc})"), (addr[0], addr[1]))
                except ValueError:
                    pass  # not even the Via is usable
            return
        except ValueError as exc:
            self.stats["dropped"] += 1
            log.info("dropped %d bytes from %s: %s", len(data), addr, exc)
            return
        try:
            if isinstance(msg, Request):
                self._on_request(msg, (addr[0], addr[1]))
            else:
                self._on_response(msg)
        except Exception:  # a bug must not take the socket down with it
            log.exception("failed handling a message from %s", addr)

    def close(self) -> None:
        for timers in self._timers.values():
            for handle in timers.values():
                handle.cancel()
        self._timers.clear()
        if self.transport is not None:
            self.transport.close()

    # -- inbound -----------------------------------------------------------------------
    def _on_request(self, req: Request, source: Addr) -> None:
        problem, via = self._malformed(req)
        if via is None:
            self.stats["bad_request"] += 1
            if req.method != "ACK" and req.header("Via"):
                try:
                    self.send_direct(make_response(req, 400, problem), source)
                except ValueError:
                    pass  # not even the Via is usable: nowhere to answer
            return
        reply_to = _stamp_via(req, source, via)
        key = server_key(req, via)
        tx = self.server_tx.get(key)
        if tx is not None:
            self.run(tx, tx.on_request(req))  # type: ignore[attr-defined]
            return
        if req.method == "ACK":
            self.core.on_ack(req, source)  # the ACK for a 2xx is its own transaction-less request
            return
        quick = self.core.stateless_answer(req)
        if quick is not None:
            self.stats["stateless"] += 1
            self.send_direct(quick, reply_to)
            return
        if req.method == "INVITE":
            tx = InviteServerTransaction(key, State.PROCEEDING, request=req)
        else:
            tx = ServerTransaction(key, State.TRYING, request=req)
        self.server_tx[key] = tx
        self._dest[id(tx)] = reply_to
        if req.method == "INVITE":
            self.respond(tx, make_response(req, 100, "Trying"))  # §17.2.1: at once, stops the client retransmitting
        self.core.on_request(req, tx, source)

    def answer_without_transaction(self, data: bytes, source: Addr) -> bool:
        """Answer a request the core decides alone (`stateless_answer`) and no transaction here awaits.

        False, and nothing sent: it needs more (for a worker process, the main process). The request
        is read as `_on_request` reads it, so the answer is the one any process would send.
        """
        try:
            req = parse_message(data)
        except ValueError:
            return False
        if not isinstance(req, Request):
            return False
        _, via = self._malformed(req)
        if via is None or server_key(req, via) in self.server_tx:
            return False
        reply_to = _stamp_via(req, source, via)
        quick = self.core.stateless_answer(req)
        if quick is None:
            return False
        self.stats["received"] += 1
        self.stats["stateless"] += 1
        self.send_direct(quick, reply_to)
        return True

    @staticmethod
    def _malformed(req: Request) -> tuple[str, None] | tuple[None, Via]:
        """(why it is refused, None) or (None, its top Via, parsed once here)."""
        missing = [h for h in MANDATORY if req.header(h) is None]
        if missing:
            return f"Bad Request (missing {', '.join(missing)})", None
        # §20: these carry one value; two of them make the request ambiguous (RFC 4475 §3.3.8)
        repeated = [h for h in SINGLETONS if len(req.values(h) if h in ("From", "To") else req.header_all(h)) > 1]
        if repeated:
            return f"Bad Request (more than one {', '.join(repeated)})", None
        try:
            via = parse_via(req.values("Via")[0])
            number, method = req.cseq()
        except (ValueError, IndexError) as exc:
            return f"Bad Request ({exc})", None
        if method != req.method:
            return "Bad Request (CSeq method does not match)", None
        return None, via

    def _on_response(self, resp: Response) -> None:
        try:
            via = parse_via(resp.values("Via")[0])
            key = (via.branch or "", resp.cseq()[1])
        except (ValueError, IndexError):
            self.stats["dropped"] += 1
            return
        tx = self.client_tx.get(key)
        if tx is None:
            self.stats["stray_responses"] += 1  # matches nothing we sent: never answered...
            if 200 <= resp.status < 300 and key[1] == "INVITE":
                self.core.on_2xx_retransmission(resp)  # ...except a 2xx whose ACK was lost (§13.2.2.4)
            return
        if isinstance(tx, InviteClientTransaction) and resp.status >= 300 and tx.ack is None and tx.request:
            tx.ack = make_ack_for(tx.request, resp)
        self.run(tx, tx.on_response(resp))  # type: ignore[attr-defined]

    # -- outbound ----------------------------------------------------------------------
    def respond(self, tx: Transaction, resp: Response) -> None:
        self.run(tx, tx.respond(resp))  # type: ignore[attr-defined]

    def request(self, req: Request, dest: Addr) -> Transaction:
        """Start a client transaction for `req` (its top Via carries a fresh branch)."""
        via = parse_via(req.values("Via")[0])
        key = (via.branch or "", req.method)
        if req.method == "INVITE":
            tx: Transaction = InviteClientTransaction(key, State.CALLING, request=req)
        else:
            tx = ClientTransaction(key, State.TRYING, request=req)
        self.client_tx[key] = tx
        self._dest[id(tx)] = dest
        self.run(tx, tx.start())  # type: ignore[attr-defined]
        return tx

    def send_direct(self, msg: Request | Response, dest: Addr | None) -> None:
        """Sent as it is, outside any transaction: a stateless answer, or the ACK of a 2xx (the UAC core's)."""
        if self.transport is None or dest is None:
            return
        self.transport.sendto(bytes(msg), dest)

    def run(self, tx: Transaction, actions: list[Action]) -> None:
        loop = asyncio.get_running_loop()
        for a in actions:
            if isinstance(a, Send):
                dest = self._dest.get(id(tx))
                if dest is None and isinstance(a.message, Response):
                    dest = response_destination(a.message)
                self.send_direct(a.message, dest)
            elif isinstance(a, StartTimer):
                timers = self._timers.setdefault(id(tx), {})
                old = timers.pop(a.name, None)
                if old:
                    old.cancel()
                timers[a.name] = loop.call_later(a.delay, self._fire, tx, a.name)
            elif isinstance(a, StopTimer):
                handle = self._timers.get(id(tx), {}).pop(a.name, None)
                if handle:
                    handle.cancel()
            elif isinstance(a, ToTU) and isinstance(a.message, Response):
                self.core.on_response(a.message, tx)
            elif isinstance(a, ToTU):
                self.core.on_ack(a.message, ("", 0))  # type: ignore[arg-type]
            elif isinstance(a, TimedOut):
                self.core.on_timeout(tx)
        if tx.done:
            self._forget(tx)

    def _fire(self, tx: Transaction, name: str) -> None:
        self._timers.get(id(tx), {}).pop(name, None)
        try:
            self.run(tx, tx.on_timer(name))  # type: ignore[attr-defined]
        except Exception:
            log.exception("timer %s of %s failed", name, tx.key)

    def _forget(self, tx: Transaction) -> None:
        for table in (self.server_tx, self.client_tx):
            if table.get(tx.key) is tx:
                del table[tx.key]
        for handle in self._timers.pop(id(tx), {}).values():
            handle.cancel()
        self._dest.pop(id(tx), None)
