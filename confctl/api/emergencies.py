"""Emergency consultations: see what opening one would take (the dry check), open it now (chosen sites
or a preset), see what it pre-empted and how its calls go, end it.

Only people with the `emergency` permission (the duty officer) open or end one. Where a room or a link
is held at lower precedence, those sessions give way (rooms/store/preemptions.py); their live legs
follow at once (confctl/live_plans.py) and sessions that changed rooms get their invites again. Every
site with a registered phone is called as it opens (confctl/emergency_calls.py). Ending it gives back
what fits.
"""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from confctl.api.route import READERS, WRITERS, Route
from confctl.api.session_access import session_for
from confctl.api.sessions import check_precedence, explained, with_join_urls
from confctl.auth import require
from confctl.emergency_calls import EMERGENCY_CALLS, registered_phones
from confctl.errors import ApiError, parse_body
from confctl.invites import notify
from confctl.keys import BOOKINGS, QUALITY, USER_STORE, run_db, run_read
from confctl.live_plans import follow
from rooms.admission import Accepted, BookingRequest, RequestError
from rooms.booking_form import BookingBody, SessionMeta, to_request
from rooms.emergency_decision import giving_way
from rooms.preemption import Precedence
from rooms.presets import PRESETS, preset_sites
from rooms.store.bookings import NotFound, Outcome
from rooms.store.preemptions import NotAnEmergency, Preemptions, as_csv_rows, what
from rooms.store.users import Role, User

PROVINCE_TZ = timezone(timedelta(hours=8))
OVERSEERS = ("organizer", *READERS)  # the duty officer is an organizer with the emergency permission


class NewEmergency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="Emergency consultation", min_length=1, max_length=200)
    preset: Optional[str] = Field(default=None, description=f"one of {', '.join(PRESETS)}")
    sites: list[str] = Field(default_factory=list, max_length=200, description="sites (or site/room) to add")
    hours: float = Field(default=2.0, ge=0.25, le=12)
    profile: str = "sd"


def _desk(request: web.Request) -> Preemptions:
    return Preemptions(request.app[BOOKINGS])


def _duty(user: User) -> None:
    if not (user.may("emergency") or user.role is Role.ADMIN):
        raise ApiError(403, "forbidden", "only the duty officer (the emergency permission) or an admin ends an emergency")


async def _request(request: web.Request, user: User) -> tuple[BookingRequest, SessionMeta]:
    """The emergency a body asks for, starting now (the open and its dry check read the same)."""
    body = await parse_body(request, NewEmergency)
    if body.preset is None and not body.sites:
        raise ApiError(422, "invalid_body", "give a preset or sites")
    check_precedence(user, "emergency")
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    host, sites = preset_sites(topo, body.preset) if body.preset else (str(topo.root), [])
    start = datetime.now(PROVINCE_TZ).replace(microsecond=0) + timedelta(seconds=1)
    booking = BookingBody(title=body.title, host_site=host, sites=[*sites, *body.sites], start=start.isoformat(),
                          end=(start + timedelta(hours=body.hours)).isoformat(), profile=body.profile,
                          plan="cascade", precedence="emergency", auto_layouts=True)
    return await run_read(request.app, to_request, booking, datetime.now(timezone.utc))


async def preview_emergency(request: web.Request) -> web.Response:
    """The dry check behind "Open": who would give way (rooms and links), computed as opening would, taking nothing."""
    user = require(request)
    req, meta = await _request(request, user)
    seen = await run_read(request.app, _desk(request).preview, req, Precedence(meta.precedence), int(time.time()))
    names = {}
    for y in seen.plan.yielding.values():
        person = await run_read(request.app, request.app[USER_STORE].by_id, y.before.organizer_id)
        names[y.before.organizer_id] = person.name if person else y.before.organizer_id
    body: dict[str, Any] = {"fits": seen.plan.admitted, "gives_way": giving_way(seen.plan, seen.topology, names),
                            "limited": seen.limited,
                            "sites": [{"site": c.site, "room": c.room} for c in seen.plan.request.sites]}
    if not seen.plan.admitted:
        body["refusal"] = await explained(request, Outcome(seen.plan.decision, seen.topology, seen.plan.request), meta)
    return web.json_response(body)


async def open_emergency(request: web.Request) -> web.Response:
    user = require(request)
    req, meta = await _request(request, user)
    opened = await run_db(request.app, _desk(request).open, req, meta, user.id, int(time.time()))
    if not isinstance(opened.outcome.decision, Accepted):
        return web.json_response(await explained(request, opened.outcome, meta), status=409)
    session = opened.outcome.session
    assert session is not None
    live = await follow(request.app, opened.changes, session, opened.records)
    for change in opened.changes:
        if change.view is not None:  # its rooms changed: its people get the invite again (SEQUENCE + 1)
            notify(request, change.view)
    notify(request, session)
    # Every site with a registered phone is called now; the page follows the calls in /api/emergencies.
    phones = await registered_phones(request.app, [x["site"] for x in session["sites"]], int(time.time()))
    calls = request.app.get(EMERGENCY_CALLS)
    if calls is not None and phones:
        calls.start(session, phones)
    topo = opened.outcome.topology
    return web.json_response({**with_join_urls(request, user, session),
                              "preempted": [{**r, "what": what(topo, r)} for r in opened.records if r["kind"] != "limit"],
                              "limited": opened.limited, "live": live, "calling": sorted(phones)}, status=201)


async def end_emergency(request: web.Request) -> web.Response:
    user = require(request)
    session = await run_read(request.app, request.app[BOOKINGS].get, request.match_info["id"])
    if session["precedence"] != "emergency":
        raise ApiError(409, "not_running", f"session {session['id']} is not an emergency")
    _duty(user)  # after the session is known: a routine session is 409 to anyone
    try:
        ended = await run_db(request.app, _desk(request).end, request.match_info["id"], int(time.time()))
    except NotAnEmergency as exc:
        raise ApiError(409, "not_running", str(exc)) from None
    live = await follow(request.app, ended.changes, ended.session, ended.records)
    for change in ended.changes:
        if change.view is not None:  # a room came back: its people get the invite again
            notify(request, change.view)
    return web.json_response({**ended.session, "restored": ended.records, "live": live})


async def running(request: web.Request) -> web.Response:
    """Emergencies running now: each site joined or not (and the phone to call it on), what it
    pre-empted (with the sessions' titles), and its join links for those who may hand them out."""
    user = require(request)
    now = int(time.time())
    store = request.app[BOOKINGS]
    sessions = await run_read(request.app, store.list, now, now + 60)  # one opened now starts a second later
    topo = await run_read(request.app, store.topology)
    phones = await registered_phones(request.app, list(topo.sites), now)
    calls = request.app.get(EMERGENCY_CALLS)
    pipeline = request.app.get(QUALITY)
    out = []
    for s in sessions:
        if s["precedence"] != "emergency":
            continue
        present = {k[2] for k in (pipeline.latest if pipeline is not None else {}) if k[0] == s["id"]}
        progress = calls.status(s["id"]) if calls is not None else {}
        dropped = set(s["media_plan"].get("dropped", []))
        sites = [{"site": x["site"], "name": topo.sites[x["site"]].name if x["site"] in topo.sites else x["site"],
                  "joined": x["site"] in present, "phone": phones.get(x["site"]),
                  "room": x.get("room"), "call": progress.get(x["site"]),
                  "receives": "left out" if x["site"] in dropped else s["media_plan"].get("layouts", {}).get(x["site"], "full")}
                 for x in s["sites"]]
        records = await run_read(request.app, _desk(request).records, None, s["id"])
        titles = {}
        for r in records:
            if r["session_id"] not in titles:
                try:
                    titles[r["session_id"]] = (await run_read(request.app, store.get, r["session_id"]))["title"]
                except NotFound:
                    titles[r["session_id"]] = r["session_id"]
        out.append({**with_join_urls(request, user, s), "site_status": sites,
                    "preemptions": [{**r, "title": titles[r["session_id"]], "what": what(topo, r)} for r in records]})
    return web.json_response({"emergencies": out})


async def presets(request: web.Request) -> web.Response:
    """The presets a duty officer opens an emergency with, each with the sites it calls."""
    require(request)
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    out = []
    names = [("emergency-offices", "All prefecture emergency offices"), ("mobile-platforms", "All mobile platforms"),
             ("vehicle", "The command vehicle"),
             *((f"prefecture:{p.id}", f"{p.name} and its counties") for p in topo.sites.values() if p.level == "prefecture")]
    for preset, label in names:
        try:
            host, sites = preset_sites(topo, preset)
        except RequestError:
            continue  # a network without a vehicle has no vehicle preset
        ids = [host.split("/")[0], *(x.split("/")[0] for x in sites)]
        out.append({"preset": preset, "label": label, "sites": [{"site": i, "name": topo.sites[i].name} for i in ids]})
    return web.json_response({"presets": out, "profiles": [p.name for p in topo.profiles if p.has_video]})


async def preemptions(request: web.Request) -> web.StreamResponse:
    """Every pre-emption and restoration, as JSON or CSV."""
    require(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(422, "invalid_query", "format is json or csv")
    rows = await run_read(request.app, _desk(request).records, request.query.get("session") or None,
                          request.query.get("emergency") or None)
    if fmt == "json":
        return web.json_response({"preemptions": rows})
    out = io.StringIO()
    csv.writer(out).writerows(as_csv_rows(rows))
    return web.Response(text=out.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="preemptions.csv"'})


async def history(request: web.Request) -> web.Response:
    """A session's history: booked, then every pre-emption it suffered or (for an emergency) caused."""
    user = require(request)
    try:
        session = await session_for(request, user)
    except NotFound:
        raise ApiError(404, "not_found", f"no session {request.match_info['id']!r}") from None
    records = await run_read(request.app, _desk(request).records, session["id"])
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    events: list[dict[str, Any]] = [{"at": session["created_at"], "what": "booked", "by": session["organizer_id"]}]
    for r in records:
        by_it = r["emergency_id"] == session["id"] and r["session_id"] != session["id"]
        events.append({**r, "at": datetime.fromtimestamp(r["at"], timezone.utc).isoformat(),
                       "what": f"took from {r['session_id']}" if by_it else r["kind"], "message": what(topo, r)})
    return web.json_response({"session": session["id"], "history": events})


routes = [
    Route("POST", "/api/emergencies", open_emergency, "Open an emergency consultation now: a preset or sites, at "
          "emergency precedence (needs the emergency permission); lower-precedence sessions give way where a link "
          "lacks room or holds a room it needs; every site with a registered phone is called", WRITERS, NewEmergency,
          {201: "the running session with join links, `preempted` (what others gave), `limited` (its own sites that "
                "get less, and why), `calling` (the sites being called)", 403: "no emergency permission",
           409: "a site's every room is held by another emergency, or media nodes refuse it",
           422: "unknown preset or site"}),
    Route("POST", "/api/emergencies/preview", preview_emergency, "The dry check before opening: which sessions would "
          "give way (rooms they move out of or give up, links they degrade or drop), with titles and organizers, "
          "computed as opening would and taking nothing", WRITERS, NewEmergency,
          {200: "{fits, gives_way: [{session, title, organizer, what}], limited, sites, refusal?}",
           403: "no emergency permission", 422: "unknown preset or site"}),
    Route("GET", "/api/emergencies/presets", presets, "The presets a duty officer opens an emergency with, and "
          "the profiles", OVERSEERS),
    Route("GET", "/api/emergencies", running, "Emergencies running now, with what each pre-empted", OVERSEERS),
    Route("POST", "/api/emergencies/{id}/end", end_emergency, "End an emergency now: pre-empted sessions get back "
          "what fits (duty officer or admin)", WRITERS, responses={200: "ended, with `restored`", 403: "not allowed",
                                                                    404: "no such session", 409: "not a running emergency"}),
    Route("GET", "/api/preemptions", preemptions, "Every pre-emption and restoration (JSON or CSV)", OVERSEERS,
          query=(("session", "taken from or by this session"), ("emergency", "caused by this emergency"),
                 ("format", "json (default) or csv"))),
    Route("GET", "/api/sessions/{id}/history", history, "A session's history: booked, pre-empted, restored",
          responses={200: "events, oldest first", 404: "no such session"}),
]
