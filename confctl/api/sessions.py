"""Booking: book, dry-run, read, edit, cancel, list."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from confctl.api.route import WRITERS, Route
from confctl.api.session_access import may_edit, session_for
from confctl.api.views import decision_view, link_name, with_booked_load, with_sessions_in_the_way
from confctl.auth import require
from confctl.errors import ApiError, read_json
from confctl.invites import notify
from confctl.join_tokens import mint
from confctl.keys import BOOKINGS, JOIN_SECRET, run_db, run_read
from confctl.live_plans import follow
from rooms.admission import Accepted, RequestError
from rooms.booking_form import BookingBody, BookingPatch, FormError, parse_body, patched_body, to_request, validation_detail
from rooms.recurrence import parse_instant
from rooms.store.preemptions import Preemptions
from rooms.store.users import Role, User

from pydantic import ValidationError



def _now() -> datetime:
    return datetime.now(timezone.utc)


async def book(request: web.Request) -> web.Response:
    user = require(request)
    body = parse_body(await read_json(request))
    if body.override and user.role is not Role.ADMIN:
        raise ApiError(403, "forbidden", "only an admin may book past admission (override)")
    check_precedence(user, body.precedence)
    req, meta = await run_read(request.app, to_request, body, _now())  # RRULE expansion: CPU, off the loop
    out = await run_db(request.app, request.app[BOOKINGS].book, req, meta, user.id, override=body.override)
    if not isinstance(out.decision, Accepted):
        return web.json_response(await explained(request, out, meta), status=409)
    notify(request, out.session)
    return web.json_response(with_join_urls(request, user, out.session), status=201)


async def check(request: web.Request) -> web.Response:
    require(request)
    body = parse_body(await read_json(request))
    req, meta = await run_read(request.app, to_request, body, _now())  # RRULE expansion: CPU, off the loop
    out = await run_read(request.app, request.app[BOOKINGS].check, req)
    return web.json_response(await explained(request, out, meta))


async def explained(request: web.Request, out: Any, meta: Any) -> dict[str, Any]:
    """The decision with what people need to read it: the sessions in the way of a refusal, and the
    load already booked on each link beside this session's."""
    store = request.app[BOOKINGS]
    view = decision_view(out, meta)
    if view["decision"] == "refused":
        return await run_read(request.app, with_sessions_in_the_way, store, view)
    first = out.request.occurrences[0]
    return await run_read(request.app, with_booked_load, store, view, first.start, first.end)


async def session_loads(request: web.Request) -> web.Response:
    """A booked session's links: its own load beside what the other sessions book then, against the limit."""
    user = require(request)
    session = await session_for(request, user)
    start, end = (int(datetime.fromisoformat(session[k]).timestamp()) for k in ("start", "end"))
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    plan = dict(session["media_plan"], links=[dict(l, name=link_name(topo, l["link"])) for l in session["media_plan"]["links"]])
    view = await run_read(request.app, with_booked_load, request.app[BOOKINGS], {"decision": "accepted", "media_plan": plan},
                          start, end, session["id"])
    return web.json_response({"links": view["media_plan"]["links"]})


def check_precedence(user: User, precedence: str) -> None:
    if precedence != "routine" and not user.may("emergency"):
        raise ApiError(403, "forbidden", f"a {precedence} session needs the emergency permission (the duty officer's); "
                       "book it as routine, or ask an administrator")


def with_join_urls(request: web.Request, user: User, session: dict[str, Any]) -> dict[str, Any]:
    """Each site's join page URL with its token, for those who hand them out or use them: the
    session's organizer and admins get every site's, a technician their own site's, others none
    (a join link lets its holder into the meeting as that site)."""
    secret = request.app[JOIN_SECRET]
    base = f"{request.url.origin()}/join?token="
    sites = [s["site"] for s in session["sites"]]
    if user.role is Role.TECHNICIAN:
        sites = [s for s in sites if s == user.site]
    elif not may_edit(user, session):
        sites = []
    return {**session, "join_urls": {s: base + mint(secret, session["id"], s) for s in sites}}


async def get_session(request: web.Request) -> web.Response:
    user = require(request)
    return web.json_response(with_join_urls(request, user, await session_for(request, user)))


async def patch_session(request: web.Request) -> web.Response:
    user = require(request)
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_body", "the change must be a JSON object")
    try:
        patch = BookingPatch.model_validate(raw)
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None
    session = await session_for(request, user)
    if not may_edit(user, session):
        raise ApiError(403, "forbidden", "only the session's organizer or an admin may change it")
    if patch.precedence is not None:
        check_precedence(user, patch.precedence)
    try:
        body = patched_body(session, patch)
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None
    req, meta = await run_read(request.app, to_request, body, _now())  # RRULE expansion: CPU, off the loop
    out = await run_db(request.app, request.app[BOOKINGS].update, session["id"], req, meta)
    if not isinstance(out.decision, Accepted):
        return web.json_response(await explained(request, out, meta), status=409)
    notify(request, out.session, session)
    return web.json_response(with_join_urls(request, user, out.session))


async def delete_session(request: web.Request) -> web.Response:
    user = require(request)
    session = await session_for(request, user)
    if not may_edit(user, session):
        raise ApiError(403, "forbidden", "only the session's organizer or an admin may cancel it")
    cancelled = await run_db(request.app, request.app[BOOKINGS].cancel, session["id"])
    if session["precedence"] == "emergency":  # what it took from others comes back, as when it ends
        given = await run_db(request.app, Preemptions(request.app[BOOKINGS]).give_back, session["id"], int(time.time()))
        await follow(request.app, given.changes, cancelled, given.records)
        cancelled["restored"] = given.records
    notify(request, cancelled)
    return web.json_response(cancelled)


QUERY_YEARS = (2000, 2200)


def query_instant(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        t = parse_instant(value, name)
    except RequestError:
        raise ApiError(400, "invalid_query", f"{name}={value!r} must be ISO 8601 with an offset") from None
    # Year 1 or 9999 overflows epoch arithmetic (and asks nothing a calendar of this network holds).
    if not QUERY_YEARS[0] <= t.year <= QUERY_YEARS[1]:
        raise ApiError(400, "invalid_query", f"{name}={value!r}: give a time between the years "
                       f"{QUERY_YEARS[0]} and {QUERY_YEARS[1]}")
    return t


def query_time(request: web.Request, name: str) -> int | None:
    t = query_instant(request, name)
    return None if t is None else int(t.timestamp())


async def list_sessions(request: web.Request) -> web.Response:
    user = require(request)
    site = request.query.get("site") or None
    if user.role is Role.TECHNICIAN:
        if site not in (None, user.site):
            raise ApiError(403, "forbidden", f"a technician sees the sessions of site {user.site} only")
        site = user.site
    if site is not None and site not in (await run_read(request.app, request.app[BOOKINGS].topology)).sites:
        raise ApiError(422, "unknown_site", f"no site {site!r} in the topology")
    start, end = query_time(request, "from"), query_time(request, "to")
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "invalid_query", "to must be after from")
    flag = request.query.get("include_cancelled") or "false"
    if flag not in ("true", "false"):
        raise ApiError(400, "invalid_query", f"include_cancelled={flag!r} must be true or false")
    store = request.app[BOOKINGS]
    rows = await run_read(request.app, store.list, start, end, site, flag == "true")
    if flag == "true" and site is not None:
        # The store finds a site's sessions by their occurrences, which a cancelled session gives up:
        # its cancelled ones come from the session rows of the window, whose sites are kept.
        every = await run_read(request.app, store.list, start, end, None, True)
        seen = {r["id"] for r in rows}
        rows = sorted(rows + [r for r in every if r["status"] == "cancelled" and r["id"] not in seen
                              and any(x["site"] == site for x in r["sites"])],
                      key=lambda r: (datetime.fromisoformat(r["start"]), r["id"]))
    return web.json_response({"sessions": rows})


REFUSED = "admission refused: {error, violations, alternatives}"
routes = [
    Route("POST", "/api/sessions", book, "Book a session (admission applied atomically)", WRITERS,
          BookingBody, {201: "the booked session with its media plan", 409: REFUSED, 422: "invalid booking"}),
    Route("GET", "/api/sessions/{id}/loads", session_loads, "A session's links: its load beside what other sessions "
          "book then (first occurrence), against each link's limit, in %"),
    Route("POST", "/api/sessions/check", check, "Dry run: the decision a booking would get now", WRITERS,
          BookingBody, {200: "{decision: accepted|refused, media_plan | violations, alternatives}"}),
    Route("GET", "/api/sessions", list_sessions, "Sessions overlapping a window, optionally at one site",
          responses={200: "{sessions: [...]}"},
          query=(("from", "ISO 8601 with offset"), ("to", "ISO 8601 with offset"), ("site", "site id"),
                 ("include_cancelled", "true to include cancelled sessions"))),
    Route("GET", "/api/sessions/{id}", get_session, "One session", responses={200: "the session", 404: "unknown id"}),
    Route("PATCH", "/api/sessions/{id}", patch_session, "Change a session; it is admitted again",
          WRITERS, BookingPatch, {200: "the changed session", 409: REFUSED}),
    Route("DELETE", "/api/sessions/{id}", delete_session, "Cancel a session and free its reservations",
          WRITERS, responses={200: "the cancelled session"}),
]
