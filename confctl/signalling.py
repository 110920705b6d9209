"""/ws on the control plane: a site's join token becomes a leg here or a redirect to a media node.

Token, session state, site membership and the booked window (± margin) are
checked against the database; the offer/answer loop itself is media.signalling's.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from confctl.join_tokens import InvalidJoinToken, verify
from confctl.session_windows import is_live, is_over
from confctl.keys import BOOKINGS, JOIN_SECRET, MEDIA_NODE, NODE_KEY, NODE_STORE, SETTINGS, run_db
from confctl.placement import attachments_of, place
from media.grants import GRANT_TTL_S, Grant, sign_grant
from media.signalling import Redirect, Refusal, serve
from rooms.store.bookings import NotFound


def _ws_url(http_url: str) -> str:
    return ("wss://" + http_url[8:] if http_url.startswith("https://") else "ws://" + http_url.removeprefix("http://")) + "/ws"


async def _authorize(request: web.Request, msg: dict[str, Any]) -> Grant | Redirect:
    app = request.app
    try:
        session_id, site = verify(app[JOIN_SECRET], msg.get("token"))
    except InvalidJoinToken as exc:
        raise Refusal("invalid_token", str(exc)) from None
    try:
        session = await run_db(app, app[BOOKINGS].get, session_id)
    except NotFound:
        raise Refusal("unknown_session", f"session {session_id} does not exist") from None
    if session["status"] != "booked":
        raise Refusal("session_cancelled", f"session {session_id} was cancelled")
    if site not in {s["site"] for s in session["sites"]}:
        raise Refusal("site_not_in_session", f"site {site} is no longer part of session {session_id}")
    mode = msg.get("mode", "meeting")
    if mode not in ("meeting", "echo"):
        raise Refusal("invalid_message", "mode is meeting (default) or echo")
    now = time.time()
    margin = app[SETTINGS].join_margin_s
    if mode == "echo":
        # The self-test runs any time before the meeting ends: that is when technicians check their rooms.
        if is_over(session, now):
            raise Refusal("outside_window", f"session {session_id} is over")
    elif not is_live(session, now, margin):
        raise Refusal("outside_window", f"session {session_id} runs {session['start']} .. {session['end']}; "
                      f"legs are admitted from {margin // 60} min before to {margin // 60} min after")
    grant = Grant(session_id, site, session["host_site"], bool(session["record"]), mode == "echo", now + GRANT_TTL_S)
    node = await _node_for(request, session)
    if node is None:
        await place(app, session_id, attachments_of(session))  # the in-process node uses the plan's node
        return grant
    return Redirect(_ws_url(node.url), sign_grant(app[NODE_KEY], replace(grant, node=node.id)))


async def _node_for(request: web.Request, session: dict[str, Any]) -> Any:
    """A live registered node process for the whole session: the one its plan puts at the root, else any.

    Trunks between node processes are not built: a session sent to node processes meets on one
    of them. In-process (no node process registered), the session cascades over its plan's nodes.
    """
    nodes = [n for n in await run_db(request.app, request.app[NODE_STORE].all) if n.alive(time.time())]
    if not nodes:
        return None
    attached = set(session["media_plan"]["attachments"].values())
    return next((n for n in nodes if n.id in attached), nodes[0])


async def websocket(request: web.Request) -> web.WebSocketResponse:
    return await serve(request, request.app[MEDIA_NODE], lambda msg: _authorize(request, msg))
