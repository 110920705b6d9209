"""What a technician's join page shows before joining: the session its join link opens, and how to send."""
from __future__ import annotations

from aiohttp import web

from confctl.api.route import PUBLIC, Route
from confctl.errors import ApiError
from confctl.join_tokens import InvalidJoinToken, verify
from confctl.keys import BOOKINGS, JOIN_SECRET, run_read
from rooms.store.bookings import NotFound


async def join_info(request: web.Request) -> web.Response:
    """The join token is the credential (it is in the technician's link): no sign-in needed."""
    try:
        session_id, site = verify(request.app[JOIN_SECRET], request.query.get("token"))
    except InvalidJoinToken as exc:
        # A public page's question, not a sign-in: a malformed link is a bad request, a forged one unknown.
        status = 422 if "malformed" in str(exc) else 404
        raise ApiError(status, "invalid_join_token", f"{exc}: use the join link your organizer sent") from None
    store = request.app[BOOKINGS]
    try:
        session = await run_read(request.app, store.get, session_id)
    except NotFound:
        raise ApiError(404, "not_found", "this session no longer exists") from None
    topo = await run_read(request.app, store.topology)
    name = lambda s: topo.sites[s].name if s in topo.sites else s  # noqa: E731
    profile = topo.profile(session["profile"])
    me = topo.sites.get(site)  # type: ignore[call-overload]
    return web.json_response({
        "session": session["id"], "title": session["title"], "status": session["status"],
        "start": session["start"], "end": session["end"], "host": name(session["host_site"]),
        "site": site, "site_name": name(site), "rtt_ms": me.rtt_ms if me is not None else None,
        "sites": [{"site": x["site"], "name": name(x["site"]), "room": x["room"]} for x in session["sites"]],
        "names": {s: t.name for s, t in topo.sites.items()},
        "profile": profile.to_dict() if profile is not None else {"name": session["profile"]},
        "dial_in": session.get("dial_in"),
        # an emergency took this site's link: it may not join until that is over (then this turns false)
        "dropped": site in session["media_plan"].get("dropped", []),
    })


routes = [
    Route("GET", "/api/join-info", join_info, "The session a join link opens: title, time, host, sites, the profile "
          "to send", PUBLIC, query=(("token", "the site's join token (from its join link)"),),
          responses={200: "the session as its join page shows it", 404: "not a join token of this system",
                     422: "a malformed token"}),
]
