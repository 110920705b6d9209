"""/ws on the control plane: a site's join token becomes a leg here or a redirect to a media node.

Token, session state, site membership and the booked window (± margin) are
checked against the database; the offer/answer loop itself is media.signalling's.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from confctl.join_tokens import InvalidJoinToken, verify
from confctl.session_windows import is_live, is_over, windows
from confctl.keys import BOOKINGS, JOIN_SECRET, MEDIA_NODE, NODE_KEY, NODE_STORE, SETTINGS, run_db, run_read
from confctl.placement import effective_placement, fallback_report, place, planned
from media.cascade_session import Placement, ws_url
from media.contracts.browser import Join, Redirect
from media.grants import GRANT_TTL_S, Grant, node_key, sign_grant
from media.signalling import WsError, serve
from rooms.ids import SiteId
from rooms.store.bookings import NotFound

log = logging.getLogger("confctl.signalling")


async def _authorize(request: web.Request, join: Join) -> Grant | Redirect:
    app = request.app
    try:
        session_id, site = verify(app[JOIN_SECRET], join.token)
    except InvalidJoinToken as exc:
        raise WsError("invalid_token", str(exc)) from None
    try:
        session = await run_db(app, app[BOOKINGS].get, session_id)
    except NotFound:
        raise WsError("unknown_session", f"session {session_id} does not exist") from None
    if session["status"] != "booked":
        raise WsError("session_cancelled", f"session {session_id} was cancelled")
    if site not in {s["site"] for s in session["sites"]}:
        raise WsError("site_not_in_session", f"site {site} is no longer part of session {session_id}")
    if site in session["media_plan"].get("dropped", []):
        raise WsError("preempted", f"an emergency consultation needs site {site}'s link now; this session gets it "
                      "back when the emergency ends")
    mode = join.mode or "meeting"
    now = time.time()
    margin = app[SETTINGS].join_margin_s
    if mode == "echo":
        # The self-test runs any time before the meeting ends: that is when technicians check their rooms.
        if is_over(session, now):
            raise WsError("outside_window", f"session {session_id} is over")
    elif not is_live(session, now, margin):
        raise WsError("outside_window", f"session {session_id} runs {session['start']} .. {session['end']}; "
                      f"legs are admitted from {margin // 60} min before to {margin // 60} min after")
    grant = Grant(session_id, site, session["host_site"], bool(session["record"]), mode == "echo", now + GRANT_TTL_S,
                  layout=session["media_plan"].get("layouts", {}).get(site), codec=session.get("codec", "vp8"))
    registered = await run_read(app, app[NODE_STORE].all)
    alive = {n.id: n for n in registered if n.alive(now)}
    topo, plan, root = await planned(app, session)
    profile = topo.profile(str(session["media_plan"].get("profile", "")))
    if app[SETTINGS].police_sources and profile is not None and profile.has_video and mode != "echo":
        grant = replace(grant, video_kbps=profile.video_kbps)  # what the node holds the site's camera to
    where = effective_placement(plan, root, set(alive), processes=bool(registered))
    notice = await _report_fallback(app, topo, session, where, SiteId(site))
    if where.in_process:
        await place(app, session_id, where)
        return replace(grant, notice=notice)
    _move_off_in_process(app, session_id)
    node = alive[where.node_of(SiteId(site))]
    cascade = Placement(where.attachments, where.root, alive[where.root].url, session["media_plan"].get("layouts", {}))
    # Always the placement, spanning nodes or not: after a fallback (node-cc died, Nong'an now on node-jl)
    # the root must learn that its stale plan no longer sends Nong'an elsewhere.
    placement = cascade.to_dict()
    if cascade.spans_nodes and node.id != where.root:
        # The child's link to the root, signed here with the root's key: nodes never sign grants themselves.
        until = max((e for s, e in windows(session, margin) if s <= now <= e), default=now + GRANT_TTL_S)
        trunk = Grant(session_id, node.id, session["host_site"], False, False, until, node=where.root,
                      cascade=placement, trunk=True)
        placement = {**placement, "trunk_grant": sign_grant(node_key(app[NODE_KEY], where.root), trunk)}
    return Redirect(url=ws_url(node.url, "/ws"), grant=sign_grant(node_key(app[NODE_KEY], node.id), replace(
        grant, node=node.id, cascade=placement)), notice=notice)


def _move_off_in_process(app: web.Application, session_id: str) -> None:
    """The session now runs on node processes: legs that joined this control plane's own node while
    none was registered are told to rejoin, or they would stay an island no other site's media reaches."""
    for site, leg in app[MEDIA_NODE].session_legs(session_id).items():  # type: ignore[arg-type]
        if leg.on_rejoin is not None:
            log.info("session %s: %s moves from the control plane's node to the session's node processes",
                     session_id, site)
            leg.on_rejoin("this session's media node is up now: moving there")
            leg.on_rejoin = None  # told once


async def _report_fallback(app: web.Application, topo: Any, session: dict[str, Any], where: Any,
                           site: SiteId) -> str | None:
    """Sessions re-placed around a node that is down: what it costs, logged (/api/live works it out again
    from shared state, confctl/placement.py fallbacks_now), and the notice for the joining site."""
    report = fallback_report(topo, session, where)
    if report is None:
        return None
    cost = report["over_reservation"]
    if cost:
        log.warning("session %s re-placed around %s costs more than booked: %s", session["id"], where.down, cost)
    planned_node = session["media_plan"]["attachments"].get(site)
    if planned_node not in where.down and where.root not in where.down:
        return None
    extra = "; ".join(f"link {c['link']} {c['direction']} carries {c['fallback_kbps']} kbit/s, "
                      f"{c['booked_kbps']} booked" for c in cost)
    return (f"media node {', '.join(where.down)} is down: {site} joins through "
            f"{'the control plane' if where.in_process else where.node_of(site)}" + (f" ({extra})" if extra else ""))


async def websocket(request: web.Request) -> web.WebSocketResponse:
    return await serve(request, request.app[MEDIA_NODE], lambda join: _authorize(request, join))
