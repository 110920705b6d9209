"""The SIP service core: OPTIONS, the registrar, and the methods a conference gateway answers.

Called by the endpoint with each new server transaction. Database work runs
through `blocking` (an executor), never on the event loop; every task the
core starts is kept and awaited on close.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from email.utils import formatdate
from typing import Any, Awaitable, Callable

from sip_stub.builders import make_response
from sip_stub.call_policy import DB_RETRY_AFTER_S
from sip_stub.digest import NONCE_TTL_S, Verdict, challenges, verify
from sip_stub.throttle import Allow, GuessEvent, GuessThrottle
from sip_stub.endpoint import Addr, SipEndpoint
from sip_stub.fields import parse_auth, parse_name_addr, parse_uri
from sip_stub.message import Request, Response
from sip_stub.transactions import Transaction
from supervision import TaskGroup
from rooms.store.sip import BindingUpdate, NonceUse, Replayed, SipAccount, SipStore
from sip_stub.gateway import Gateway, CallRejected
from sip_stub.registrations import Registrations

log = logging.getLogger("sip.service")
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER"
SUPPORTED: set[str] = {"timer"}  # option tags we implement: RFC 4028 session timers
DEFAULT_EXPIRES, MIN_EXPIRES, MAX_EXPIRES = 3600, 60, 7200

Blocking = Callable[..., Awaitable[Any]]


class SipService:
    def __init__(self, store: SipStore, blocking: Blocking, key: bytes, realm: str = "confctl",
                 digest_order: tuple[str, ...] = ("MD5", "SHA-256"), gateway: Gateway | None = None):
        self.store = store
        self.gateway = gateway
        self.registrations = Registrations(store, blocking)
        # Many deployed phones (and sipp) answer the first challenge and know only MD5, so MD5 leads by
        # default; ("SHA-256", "MD5") follows RFC 8760's strongest-first for fleets that support it.
        self.digest_order = digest_order
        self.blocking = blocking
        self.key = key
        self.realm = realm
        self.endpoint: SipEndpoint | None = None
        self._tasks = TaskGroup("SIP service")
        self.throttle = GuessThrottle()
        # The throttle's clock: monotonic, and CLOCK_MONOTONIC is one clock for every process of the host,
        # so the replicas in worker processes agree on the times in each other's outcomes.
        self.throttle_clock: Callable[[], float] = time.monotonic
        # Who shares the throttle: the worker processes reading this socket (sip_stub.workers) and the
        # other control planes (confctl/guess_bus.py). Each sink hears every outcome recorded here and
        # every outcome another sink brought (`heard`), except its own.
        self.guess_sinks: list[Callable[[GuessEvent], None]] = []

    # -- the Core protocol ---------------------------------------------------------------
    def stateless_answer(self, req: Request) -> Response | None:
        """A final answer decided by the request alone, sent without a server transaction (RFC 3261 §8.2.7).

        OPTIONS, refusals of malformed or unsupported requests, and the challenge to a REGISTER or a new
        INVITE without credentials: half of a registration storm, and all an INVITE flood gets. A
        retransmission is answered again with the identical response (the challenge is derived from the
        request), so a transaction would add nothing but its 32 s Timer J, or for an INVITE, ten
        retransmissions of the 401 towards a source that never ACKs (Timer G, §17.2.1): an amplifier for
        spoofed sources. The ACK for a 401 sent so matches no transaction and on_ack absorbs it, as
        kamailio's sl_send_reply does. ACK and CANCEL always get a transaction; None: the request needs one.
        """
        return None if req.method in ("ACK", "CANCEL") else self._answer_from_request(req)

    def _answer_from_request(self, req: Request) -> Response | None:
        """The response the request alone decides, whichever way it is sent; None: it needs more."""
        refusal = self._refusal(req)
        if refusal is not None:
            return self._response(req, *refusal)
        if req.method == "OPTIONS":
            return self._response(req, 200, "OK", [("Allow", ALLOW), ("Accept", "application/sdp")])
        if req.method in ("REGISTER", "INVITE") and req.header("Authorization") is None:
            try:
                to = parse_name_addr(req.header("To") or "")
                parse_uri(to.uri)
            except ValueError as exc:
                return self._response(req, 400, f"Bad Request ({exc})")
            if req.method == "INVITE" and to.tag:
                return None  # inside a dialog: the call's own business
            return self._response(req, *self._challenge(req, time.time()))
        return None

    def _challenge(self, req: Request, now: float) -> tuple[int, str, list[tuple[str, str]]]:
        request_id = f"{req.header('Call-ID')}|{req.header('CSeq')}|{req.header('Via')}"  # same for a retransmission
        return 401, "Unauthorized", [("WWW-Authenticate", c) for c in challenges(
            self.key, self.realm, now, order=self.digest_order, request_id=request_id)]

    def _refusal(self, req: Request) -> tuple[int, str, list[tuple[str, str]]] | None:
        """What any request is refused with before its method is looked at, or None."""
        if req.version.upper() != "SIP/2.0":
            return 505, "Version Not Supported", []
        scheme, colon, _ = req.uri.partition(":")
        if not colon or not scheme.isascii() or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
            return 400, "Bad Request (Request-URI)", []  # e.g. <sip:...> (RFC 4475 §3.1.2.7)
        if scheme.lower() not in ("sip", "sips", "tel"):
            return 416, "Unsupported URI Scheme", []
        unsupported = [t.strip() for v in req.header_all("Require") for t in v.split(",")
                       if t.strip() and t.strip() not in SUPPORTED]
        if unsupported and req.method not in ("ACK", "CANCEL"):
            return 420, "Bad Extension", [("Unsupported", ", ".join(unsupported))]
        mf = req.header("Max-Forwards")
        if mf is not None and (not mf.strip().isdigit()):
            return 400, "Bad Request (Max-Forwards)", []
        if mf is not None and int(mf) == 0 and req.method != "OPTIONS":
            return 483, "Too Many Hops", []
        return None

    def on_request(self, req: Request, tx: Transaction, source: Addr) -> None:
        answer = self._answer_from_request(req)  # (for all but INVITE the endpoint sent it without a transaction)
        if answer is not None:
            if self.endpoint is not None:
                self.endpoint.respond(tx, answer)
            return
        if req.method == "REGISTER":
            return self._register(req, tx, source)
        if self.gateway is None and req.method in ("INVITE", "BYE", "CANCEL"):
            return self._respond(tx, req, 404 if req.method == "INVITE" else 481,
                                 "Not Found" if req.method == "INVITE" else "Call/Transaction Does Not Exist")
        if req.method == "INVITE":
            return self._invite(req, tx, source)
        if req.method == "BYE":
            return self._bye(req, tx)
        if req.method == "CANCEL":
            return self._cancel(req, tx)
        return self._respond(tx, req, 405, "Method Not Allowed", [("Allow", ALLOW)])

    def on_ack(self, req: Request, source: Addr) -> None:
        """The ACK for our 2xx; or for a 401 answered without a transaction, absorbed here."""
        if self.gateway is None:
            return
        call = self.gateway.find(req)
        first = call.invite_tx.request if call is not None and call.invite_tx is not None else None
        if first is not None and req.cseq()[0] < first.cseq()[0]:
            # A late ACK for the challenge to this call's first INVITE (the 401 carried the call's To tag):
            # not the ACK for the 2xx, which would stop the 2xx's retransmissions.
            return
        invite_tx = self.gateway.ack(req)  # the ACK for our 2xx: stop retransmitting it
        if invite_tx is not None and self.endpoint is not None:
            self.endpoint.run(invite_tx, invite_tx.ack_received())  # type: ignore[attr-defined]

    # -- calls --------------------------------------------------------------------------
    def _invite(self, req: Request, tx: Transaction, source: Addr) -> None:
        assert self.gateway is not None  # checked by on_request; a programming error otherwise
        to_tag = parse_name_addr(req.header("To") or "").tag
        if to_tag:
            call = self.gateway.find(req)
            if call is None:
                return self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
            try:
                sdp, timer = self.gateway.reinvite(call, req)
            except CallRejected as r:
                return self._respond(tx, req, r.status, r.reason, r.headers, to_tag=call.local_tag)
            except ValueError as exc:
                return self._respond(tx, req, 488, f"Not Acceptable Here ({exc})")
            return self._respond(tx, req, 200, "OK", [("Content-Type", "application/sdp"), *timer], body=sdp,
                                 to_tag=call.local_tag)
        # Pending from now on, before any await: a CANCEL right behind this INVITE finds it.
        self.gateway.pending[tx.key] = req
        self._spawn(self._new_call(req, tx, source))

    async def _new_call(self, req: Request, tx: Transaction, source: Addr) -> None:
        if self.gateway is None or self.endpoint is None:
            return
        account = await self._authenticate(req, tx, source)
        if account is None:
            self.gateway.pending.pop(tx.key, None)
            return
        if tx.key not in self.gateway.pending:
            log.info("INVITE %s cancelled while it was being authenticated", req.header("Call-ID"))
            return  # the 487 went out with the CANCEL's 200
        port = self.endpoint.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        await self.gateway.invite(req, tx, account, self._respond, port, self.tag_for(req),  # type: ignore[arg-type]
                                  source)

    def _bye(self, req: Request, tx: Transaction) -> None:
        assert self.gateway is not None
        call = self.gateway.find(req)
        if call is None:
            return self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
        self._respond(tx, req, 200, "OK")
        self._spawn(self.gateway.bye(call))

    def _cancel(self, req: Request, tx: Transaction) -> None:
        assert self.gateway is not None and self.endpoint is not None
        invite_key = (*tx.key[:-1], "INVITE")
        invite_tx = self.endpoint.server_tx.get(invite_key)
        if invite_tx is None:
            return self._respond(tx, req, 481, "Call/Transaction Does Not Exist")
        self._respond(tx, req, 200, "OK")
        invite = self.gateway.cancel(invite_key)
        if invite is not None:  # still ringing: the INVITE ends with 487
            self._respond(invite_tx, invite, 487, "Request Terminated")

    async def _authenticate(self, req: Request, tx: Transaction, source: Addr) -> Any:
        """The account behind an INVITE's digest credentials, or None after answering it."""
        now = time.time()
        auth = req.header("Authorization")
        if auth is None:  # (answered without a transaction by stateless_answer when the endpoint asks it)
            self._respond(tx, req, *self._challenge(req, now))
            return None
        try:
            scheme, params = parse_auth(auth)
        except ValueError as exc:
            self._respond(tx, req, 400, f"Bad Request ({exc})")
            return None
        try:
            outcome = await self._check_digest(req, scheme, params, source, now)
            if isinstance(outcome, SipAccount) and not await self.blocking(
                    self.store.use_nonce, self._nonce_use(req, params, now), int(now)):
                outcome = self._replayed()
        except Exception as exc:  # the database failed: answer now, never leave the phone retransmitting
            self._db_failed(tx, req, exc)
            return None
        if isinstance(outcome, SipAccount):
            self._guessed_right(source, outcome.username)
            return outcome
        self._respond(tx, req, *outcome)
        return None

    async def _check_digest(self, req: Request, scheme: str, params: dict[str, str], source: Addr,
                            now: float) -> SipAccount | tuple[int, str, list[tuple[str, str]]]:
        """The account, or the refusal to send. Unknown users and wrong passwords are answered
        alike (403, no enumeration); failures are throttled per source and per (source, account),
        never per account alone (sip_stub/throttle.py). The caller records the success, once the
        digest is known not to be a replay."""
        username = params.get("username", "")
        if not isinstance(self.throttle.check(source[0], username, self.throttle_clock()), Allow):
            self._count("auth_throttled")
            return 403, "Forbidden (too many failed attempts; retry later)", []
        account = await self.registrations.account(username) if scheme == "digest" else None
        verdict = Verdict.BAD if account is None else verify(
            self.key, self.realm, params, req.method, {"MD5": account.ha1_md5, "SHA-256": account.ha1_sha256}, now,
            allowed=self.digest_order)
        if verdict is Verdict.STALE:
            return 401, "Unauthorized", [
                ("WWW-Authenticate", c) for c in challenges(self.key, self.realm, now, True, self.digest_order)]
        if verdict is Verdict.BAD:
            self._share(self.throttle.record_failure(source[0], username, self.throttle_clock()))
            self._count("auth_failed")
            return 403, "Forbidden", []
        return account

    def _guessed_right(self, source: Addr, username: str) -> None:
        self._share(self.throttle.record_success(source[0], username, self.throttle_clock()))

    def _share(self, event: GuessEvent | None, origin: Callable[[GuessEvent], None] | None = None) -> None:
        if event is None:
            return
        for sink in list(self.guess_sinks):
            if sink != origin:  # bound methods are made anew on each access: equal, not identical
                sink(event)

    def heard(self, event: GuessEvent, origin: Callable[[GuessEvent], None]) -> None:
        """An outcome recorded elsewhere, brought by the sink `origin`: applied here, passed to the other sinks."""
        self.throttle.apply(event)
        self._share(event, origin)

    def _nonce_use(self, req: Request, params: dict[str, str], now: float) -> NonceUse:
        # The whole request is its identity: a retransmission is byte for byte the same, while a
        # replay that changes anything (a Contact, to take over the binding) is not.
        return NonceUse(params.get("nonce", "")[:100], params.get("nc", "")[:16],
                        hashlib.sha256(bytes(req)).hexdigest()[:32], int(now) + NONCE_TTL_S + 60)

    def _replayed(self) -> tuple[int, str, list[tuple[str, str]]]:
        self._count("auth_replayed")
        return 403, "Forbidden (digest response replayed)", []

    def _db_failed(self, tx: Transaction, req: Request, exc: BaseException) -> None:
        log.error("database error on %s from %s: %r", req.method, req.header("From"), exc)
        self._count("db_errors")
        self._respond(tx, req, 500, "Server Internal Error (database)", [("Retry-After", str(DB_RETRY_AFTER_S))])

    def _count(self, name: str) -> None:
        if self.endpoint is not None:
            self.endpoint.stats[name] = self.endpoint.stats.get(name, 0) + 1

    def on_response(self, resp: Response, tx: Transaction) -> None:
        if self.gateway is not None:
            self._spawn(self.gateway.on_response(resp, tx))

    def on_2xx_retransmission(self, resp: Response) -> None:
        if self.gateway is not None:
            self.gateway.reack(resp)

    def on_timeout(self, tx: Transaction) -> None:
        log.info("transaction %s timed out", tx.key)
        if self.gateway is not None:
            self._spawn(self.gateway.on_timeout(tx))

    async def dial_out(self, conf: Any, username: str, dial_in: str) -> str:
        """Invite a registered phone into a live session (its site must be in the session)."""
        if self.gateway is None or self.endpoint is None:
            raise RuntimeError("the SIP service is not running")
        account = await self.registrations.account(username)
        if account is None:
            raise LookupError(f"no SIP account {username!r}")
        if account.site not in conf.sites:
            raise PermissionError(f"site {account.site} of {username} is not in this session")
        bindings = await self.blocking(self.store.bindings, username, int(time.time()))
        if not bindings:
            raise LookupError(f"{username} is not registered")
        port = self.endpoint.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        return await self.gateway.dial_out(conf, account, bindings[-1].contact, self.endpoint, port, dial_in)

    # -- helpers ---------------------------------------------------------------------
    def _respond(self, tx: Transaction, req: Request, status: int, reason: str,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"", to_tag: str | None = None) -> None:
        if self.endpoint is not None:
            self.endpoint.respond(tx, self._response(req, status, reason, headers, body, to_tag))

    def _response(self, req: Request, status: int, reason: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", to_tag: str | None = None) -> Response:
        to_tag = to_tag or (self.tag_for(req) if status > 100 else None)
        return make_response(req, status, reason, headers, body=body, to_tag=to_tag)

    def tag_for(self, req: Request) -> str:
        """Our To tag for a caller's request: the same for every response to its Call-ID and From tag.

        A 401 and the 2xx that follows it then carry one tag; some UAs (sipp among them) keep the
        first tag they see for the dialog.
        """
        from_tag = parse_name_addr(req.header("From") or "").tag or ""
        return hmac.new(self.key, f"{req.header('Call-ID')}|{from_tag}".encode(), hashlib.sha256).hexdigest()[:16]

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.spawn(coro, "SIP transaction work")

    async def close(self) -> None:
        await self._tasks.close()
        if self.gateway is not None:
            await self.gateway.close()
        await self.registrations.close()

    # -- registrar (RFC 3261 §10.3) ---------------------------------------------------
    def _register(self, req: Request, tx: Transaction, source: Addr) -> None:
        """A REGISTER with credentials (one without was challenged by _answer_from_request)."""
        try:
            to = parse_uri(parse_name_addr(req.header("To") or "").uri)
        except ValueError as exc:
            return self._respond(tx, req, 400, f"Bad Request ({exc})")
        self._spawn(self._register_authorized(req, tx, to.user or "", req.header("Authorization") or "", time.time(),
                                              source))

    async def _register_authorized(self, req: Request, tx: Transaction, user: str, auth: str, now: float,
                                   source: Addr) -> None:
        try:
            scheme, params = parse_auth(auth)
        except ValueError as exc:
            return self._respond(tx, req, 400, f"Bad Request ({exc})")
        if params.get("username") != user:
            params = {**params, "username": ""}  # credentials for another user than the To: refused alike
        try:
            outcome = await self._check_digest(req, scheme, params, source, now)
        except Exception as exc:  # the database failed: 500 at once, the transaction ends with it
            return self._db_failed(tx, req, exc)
        if not isinstance(outcome, SipAccount):
            return self._respond(tx, req, *outcome)
        account = outcome
        try:
            changes, remove_all = self._contacts(req)
        except ValueError as exc:
            return self._respond(tx, req, 400, f"Bad Request ({exc})")
        if any(0 < e < MIN_EXPIRES for _, e in changes):
            return self._respond(tx, req, 423, "Interval Too Brief", [("Min-Expires", str(MIN_EXPIRES))])
        number, _ = req.cseq()
        try:
            bindings = await self.registrations.update(BindingUpdate(
                account.username, changes, req.header("Call-ID") or "", number, int(now), remove_all,
                self._nonce_use(req, params, now)))
        except Exception as exc:
            return self._db_failed(tx, req, exc)
        if isinstance(bindings, Replayed):
            return self._respond(tx, req, *self._replayed())
        self._guessed_right(source, account.username)
        contacts = [("Contact", f"<{b.contact}>;expires={max(0, b.expires_at - int(now))}") for b in bindings]
        self._respond(tx, req, 200, "OK", [*contacts, ("Date", formatdate(now, usegmt=True))])

    @staticmethod
    def _contacts(req: Request) -> tuple[list[tuple[str, int]], bool]:
        header_expires = req.header("Expires")
        default = DEFAULT_EXPIRES
        if header_expires is not None:
            if not header_expires.strip().isdigit():
                raise ValueError("Expires must be a number of seconds")
            default = int(header_expires)
        values = req.values("Contact")
        if values == ["*"]:
            if default != 0:
                raise ValueError("Contact: * needs Expires: 0")
            return [], True
        out = []
        for v in values:
            na = parse_name_addr(v)
            exp = na.params.get("expires")
            seconds = int(exp) if exp is not None and exp.isdigit() else default
            out.append((na.uri, min(seconds, MAX_EXPIRES)))
        return out, False
