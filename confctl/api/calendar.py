"""iCalendar: one session's invite, and a feed per site (icalendar package, RFC 5545)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from icalendar import Calendar, Event, vCalAddress, vText

from confctl.api.route import Route
from confctl.api.sessions import _session_for, with_join_urls
from confctl.auth import require
from confctl.errors import ApiError
from confctl.keys import BOOKINGS, USER_STORE, run_read
from rooms.store.users import Role


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(timezone.utc)


def session_event(session: dict[str, Any], names: dict[str, str], site: str | None = None,
                  join_urls: dict[str, str] | None = None, organizer: str | None = None) -> Event:
    """One session as a VEVENT: the organizer, every site as a room attendee, the dial-in number, and
    the join link of `site` (or every join link the reader may hand out) in URL and DESCRIPTION."""
    join_urls = join_urls or {}
    ev = Event()
    ev.add("uid", f"{session['id']}@confctl")
    ev.add("dtstamp", datetime.now(timezone.utc))
    ev.add("sequence", session.get("sequence", 0))
    ev.add("summary", session["title"])
    ev.add("dtstart", _utc(session["start"]))
    ev.add("dtend", _utc(session["end"]))
    # Every occurrence as an RDATE: exact whatever the rule's local-time subtleties.
    for occ in session["occurrences"][1:]:
        ev.add("rdate", _utc(occ["start"]))
    who = vCalAddress(f"urn:confctl:user:{session['organizer_id']}")
    who.params["cn"] = vText(organizer or session["organizer_id"])
    ev.add("organizer", who)
    rooms = {s["site"]: s["room"] for s in session["sites"]}
    for s, room in rooms.items():
        attendee = vCalAddress(f"urn:confctl:site:{s}:{room}")
        attendee.params.update({"cn": vText(f"{names.get(s, s)} / {room}"), "cutype": vText("ROOM"),
                                "role": vText("CHAIR" if s == session["host_site"] else "REQ-PARTICIPANT")})
        ev.add("attendee", attendee, encode=0)
    dial = session.get("dial_in")
    where = site or session["host_site"]
    ev.add("location", f"{names.get(where, where)} / {rooms.get(where, '')}" + (f" · dial-in {dial}" if dial else ""))
    if site is not None and site in join_urls:
        ev.add("url", join_urls[site])
    participants = ", ".join(f"{names.get(s, s)} ({r})" for s, r in rooms.items())
    lines = [f"Host: {names.get(session['host_site'], session['host_site'])}", f"Sites: {participants}",
             f"Profile: {session['profile']}, plan: {session['plan']}{', recorded' if session['record'] else ''}"]
    if dial:
        lines.append(f"Dial-in from a registered phone: {dial}")
    shown = {site: join_urls[site]} if site is not None and site in join_urls else join_urls
    lines += [f"Join as {names.get(s, s)}: {u}" for s, u in shown.items()]
    ev.add("description", "\n".join(lines))
    ev.add("status", "CANCELLED" if session["status"] == "cancelled" else "CONFIRMED")
    return ev


def _calendar(name: str, method: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", "-//confctl//booking//EN")
    cal.add("version", "2.0")
    if method is not None:  # an invite (RFC 5546); a subscribed feed carries none
        cal.add("method", method)
    cal.add("x-wr-calname", name)
    return cal


def _ics(cal: Calendar, filename: str) -> web.Response:
    return web.Response(body=cal.to_ical(), content_type="text/calendar", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def session_ics(request: web.Request) -> web.Response:
    """The invite: METHOD:REQUEST with a SEQUENCE that grows with each change; METHOD:CANCEL once cancelled."""
    user = require(request)
    session = await _session_for(request, user)
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    names = {s: topo.sites[s].name for s in topo.sites}
    site = request.query.get("site") or (user.site if user.role is Role.TECHNICIAN else None)
    if site is not None and site not in {s["site"] for s in session["sites"]}:
        raise ApiError(422, "unknown_site", f"site {site!r} does not take part in this session")
    urls = with_join_urls(request, user, session)["join_urls"] if session["status"] == "booked" else {}
    organizer = await run_read(request.app, request.app[USER_STORE].by_id, session["organizer_id"])
    cal = _calendar(session["title"], "CANCEL" if session["status"] == "cancelled" else "REQUEST")
    cal.add_component(session_event(session, names, site, urls, organizer.name if organizer else None))
    return _ics(cal, f"{session['id']}{'-' + site if site else ''}.ics")


async def site_feed(request: web.Request) -> web.Response:
    user = require(request)
    site = request.match_info["site"]
    if user.role is Role.TECHNICIAN and user.site != site:
        raise ApiError(403, "forbidden", f"a technician reads the calendar of site {user.site} only")
    topo = await run_read(request.app, request.app[BOOKINGS].topology)
    if site not in topo.sites:
        raise ApiError(404, "not_found", f"no site {site!r}")
    sessions = await run_read(request.app, request.app[BOOKINGS].list, None, None, site)
    names = {s: topo.sites[s].name for s in topo.sites}
    cal = _calendar(f"{topo.sites[site].name} video conferences")  # type: ignore[index]
    for s in sessions:
        cal.add_component(session_event(s, names, site, with_join_urls(request, user, s)["join_urls"]))
    return _ics(cal, f"{site}.ics")


routes = [
    Route("GET", "/api/sessions/{id}.ics", session_ics, "A session as an iCalendar invite (REQUEST, or CANCEL once "
          "cancelled; SEQUENCE grows with each change): organizer, sites as rooms, dial-in, join links",
          responses={200: "text/calendar"}, content_type="text/calendar",
          query=(("site", "one site's invite, with its join link as URL"),
                 ("token", "a feed token, for calendar clients that cannot send headers"))),
    Route("GET", "/api/sites/{site}/calendar.ics", site_feed, "A site's booked sessions as an iCalendar feed",
          responses={200: "text/calendar"}, content_type="text/calendar",
          query=(("token", "a feed token (POST /api/feed-tokens), for calendar clients that cannot send headers"),)),
]
