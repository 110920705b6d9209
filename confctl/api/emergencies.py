"""An emergency consultation that starts now: chosen sites or a preset, at emergency precedence.

Only people with the `emergency` permission (the duty officer) may open one. It is admitted like any
booking for now; pre-empting lower-precedence sessions where a link lacks capacity
(rooms/preemption.py) is the next step of this feature.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from confctl.api.route import WRITERS, Route
from confctl.api.sessions import check_precedence, explained, with_join_urls
from confctl.auth import require
from confctl.errors import ApiError, parse_body
from confctl.keys import BOOKINGS, run_db, run_read
from rooms.admission import Accepted
from rooms.booking_form import BookingBody, to_request
from rooms.presets import PRESETS, preset_sites

PROVINCE_TZ = timezone(timedelta(hours=8))


class NewEmergency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="Emergency consultation", min_length=1, max_length=200)
    preset: Optional[str] = Field(default=None, description=f"one of {', '.join(PRESETS)}")
    sites: list[str] = Field(default_factory=list, max_length=200, description="sites (or site/room) to add")
    hours: float = Field(default=2.0, ge=0.25, le=12)
    profile: str = "sd"


async def open_emergency(request: web.Request) -> web.Response:
    user = require(request)
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
    req, meta = await run_read(request.app, to_request, booking, datetime.now(timezone.utc))
    out = await run_db(request.app, request.app[BOOKINGS].book, req, meta, user.id)
    if not isinstance(out.decision, Accepted):
        return web.json_response(await explained(request, out, meta), status=409)
    return web.json_response(with_join_urls(request, user, out.session), status=201)


routes = [
    Route("POST", "/api/emergencies", open_emergency, "Open an emergency consultation now: a preset or sites, at "
          "emergency precedence (needs the emergency permission)", WRITERS, NewEmergency,
          {201: "the running session, with join links", 403: "no emergency permission", 409: "does not fit",
           422: "unknown preset or site"}),
]
