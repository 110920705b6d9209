"""Telephony through the API: SIP accounts (admins), dial-out into a live session, call records."""
from __future__ import annotations

import time

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from confctl.api.route import READERS, WRITERS, Route
from confctl.api.session_access import session_for
from confctl.auth import require
from confctl.errors import ApiError, read_json
from confctl.keys import BOOKINGS, SIP_ENDPOINT, SIP_SERVICE, SIP_STORE, SIP_WORKERS, run_db, run_read
from confctl.telephony import SessionConferences
from rooms.booking_form import FormError, validation_detail
from rooms.store.calls import CallRecords
from rooms.store.sip import SipAccountError
from rooms.store.users import Role
from sip_stub.gateway import CallRejected


class NewSipAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    site: str
    password: str = Field(min_length=8, max_length=200)


class DialOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str = Field(min_length=1, max_length=64)


def _body(model, raw):  # type: ignore[no-untyped-def]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None


async def add_account(request: web.Request) -> web.Response:
    require(request)
    body = _body(NewSipAccount, await read_json(request))
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    if body.site not in topo.sites:
        raise ApiError(422, "unknown_site", f"site {body.site!r} is not in the topology")
    try:
        acc = await run_db(request.app, request.app[SIP_STORE].add_account, body.username, body.site, body.password, "confctl")
    except SipAccountError as exc:
        raise ApiError(422, "invalid_sip_account", str(exc)) from None
    return web.json_response({"username": acc.username, "site": acc.site, "realm": acc.realm}, status=201)


async def list_accounts(request: web.Request) -> web.Response:
    require(request)
    accounts = await run_read(request.app, request.app[SIP_STORE].accounts)
    now = int(time.time())
    out = []
    for a in accounts:
        bindings = await run_read(request.app, request.app[SIP_STORE].bindings, a.username, now)
        out.append({"username": a.username, "site": a.site, "registered": [b.contact for b in bindings]})
    return web.json_response({"accounts": out})


async def dial_out(request: web.Request) -> web.Response:
    user = require(request)
    session = await session_for(request, user)
    if user.role is Role.ORGANIZER and session["organizer_id"] != user.id:
        raise ApiError(403, "forbidden", "only the session's organizer or an admin dials out")
    body = _body(DialOut, await read_json(request))
    service = request.app.get(SIP_SERVICE)
    if service is None:
        raise ApiError(503, "sip_disabled", "the SIP service is not running (confctl serve --sip-port)")
    conf = await SessionConferences(request.app).by_number(session["dial_in"] or "")
    if conf is None or not conf.active or not any(s <= time.time() <= e for s, e in conf.windows):
        raise ApiError(409, "not_live", "the session is not live now")
    try:
        call_id = await service.dial_out(conf, body.account, session["dial_in"])  # type: ignore[attr-defined]
    except LookupError as exc:
        raise ApiError(404 if "no SIP account" in str(exc) else 409, "cannot_dial", str(exc)) from None
    except PermissionError as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    except CallRejected as exc:
        raise ApiError(409, "busy", exc.reason) from None
    return web.json_response({"call_id": call_id, "state": "calling"}, status=202)


async def calls(request: web.Request) -> web.Response:
    require(request)
    session = request.query.get("session") or None
    rows = await run_read(request.app, CallRecords(request.app[BOOKINGS].engine).list, session, kind="sip")
    return web.json_response({"calls": rows})


async def sip_status(request: web.Request) -> web.Response:
    require(request)
    workers = request.app.get(SIP_WORKERS)
    if workers is None:
        raise ApiError(503, "sip_disabled", "the SIP service is not running (confctl serve --sip-port)")
    return web.json_response(workers.status())


routes = [
    Route("GET", "/api/sip/status", sip_status, "The SIP service: this process's counters (received, stateless "
          "answers, bad requests...), whether it reads the socket, and each worker process's latest report",
          READERS),
    Route("POST", "/api/sip-accounts", add_account, "Create a SIP account bound to a site (digest credentials)",
          ("admin",), NewSipAccount, {201: "the account", 422: "invalid"}),
    Route("GET", "/api/sip-accounts", list_accounts, "SIP accounts and their registered contacts", READERS),
    Route("POST", "/api/sessions/{id}/dial-out", dial_out, "Call a registered phone into this live session",
          WRITERS, DialOut, {202: "{call_id}: the outcome lands in /api/calls",
                                                        409: "not live, not registered, or busy"}),
    Route("GET", "/api/calls", calls, "Call records of every SIP leg", READERS,
          query=(("session", "only this session's calls"),)),
]
