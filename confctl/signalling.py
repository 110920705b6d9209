"""WebSocket signalling at /ws: join (with a per-site join token), offer/answer, program, leave.

Messages are JSON objects with a `type`. Every problem is answered with
{"type": "error", "code", "detail"} and the connection keeps serving; the
leg of a connection that goes away is closed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import WSMsgType, web

from confctl.join_tokens import InvalidJoinToken, verify
from confctl.keys import BOOKINGS, JOIN_SECRET, MEDIA_NODE, SETTINGS, run_db
from media.program import Program
from media.room import Leg, SignallingError
from rooms.ids import SessionId, SiteId
from rooms.store.bookings import NotFound

log = logging.getLogger("confctl.signalling")
MAX_MESSAGE = 256 * 1024  # an SDP offer is a few kB


@dataclass
class Joined:
    session: SessionId
    site: SiteId
    host: SiteId
    record: bool = False
    echo: bool = False  # a pre-meeting self-test leg
    leg: Leg | None = None

    @property
    def room_key(self) -> SessionId:
        return SessionId(f"{self.session}/echo/{self.site}") if self.echo else self.session


def _in_window(session: dict[str, Any], now: float, margin_s: int) -> bool:
    return any(datetime.fromisoformat(o["start"]).timestamp() - margin_s <= now
               <= datetime.fromisoformat(o["end"]).timestamp() + margin_s for o in session["occurrences"])


class SignallingError4xx(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


async def _join(request: web.Request, msg: dict[str, Any]) -> Joined:
    app = request.app
    try:
        session_id, site = verify(app[JOIN_SECRET], msg.get("token"))
    except InvalidJoinToken as exc:
        raise SignallingError4xx("invalid_token", str(exc)) from None
    try:
        session = await run_db(app, app[BOOKINGS].get, session_id)
    except NotFound:
        raise SignallingError4xx("unknown_session", f"session {session_id} does not exist") from None
    if session["status"] != "booked":
        raise SignallingError4xx("session_cancelled", f"session {session_id} was cancelled")
    if site not in {s["site"] for s in session["sites"]}:
        raise SignallingError4xx("site_not_in_session", f"site {site} is no longer part of session {session_id}")
    echo = msg.get("mode") == "echo"
    if msg.get("mode") not in (None, "echo", "meeting"):
        raise SignallingError4xx("invalid_message", "mode is meeting (default) or echo")
    margin = app[SETTINGS].join_margin_s
    if echo:
        # The self-test runs any time before the meeting ends: that is when technicians check their rooms.
        if time.time() > max(datetime.fromisoformat(o["end"]).timestamp() for o in session["occurrences"]):
            raise SignallingError4xx("outside_window", f"session {session_id} is over")
    elif not _in_window(session, time.time(), margin):
        raise SignallingError4xx("outside_window", f"session {session_id} runs {session['start']} .. {session['end']}; "
                                 f"legs are admitted from {margin // 60} min before to {margin // 60} min after")
    return Joined(SessionId(session_id), SiteId(site), SiteId(session["host_site"]), bool(session["record"]), echo)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    node = request.app[MEDIA_NODE]
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
    joined: Joined | None = None

    async def writer() -> None:
        try:
            while True:
                await ws.send_json(await outbox.get())
        except ConnectionError:  # the client went away; the reader side ends the connection
            pass

    def send(msg: dict[str, Any]) -> None:
        if outbox.full():  # a client that does not read its socket loses program updates, not the server
            return
        outbox.put_nowait(msg)

    def error(code: str, detail: str) -> None:
        send({"type": "error", "code": code, "detail": detail})

    writer_task = asyncio.create_task(writer())
    try:
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                if raw.type == WSMsgType.BINARY:
                    error("invalid_message", "send JSON text messages")
                continue
            try:
                msg = json.loads(raw.data)
            except json.JSONDecodeError as exc:
                error("invalid_json", str(exc))
                continue
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                error("invalid_message", "a message is a JSON object with a string `type`")
                continue
            kind = msg["type"]
            try:
                if kind == "join":
                    if joined is not None:
                        raise SignallingError4xx("already_joined", f"this connection is site {joined.site}")
                    joined = await _join(request, msg)
                    send({"type": "joined", "session": joined.session, "site": joined.site, "host": joined.host,
                          "mode": "echo" if joined.echo else "meeting"})
                elif kind == "offer":
                    if joined is None:
                        raise SignallingError4xx("not_joined", "send join with your token first")
                    if not isinstance(msg.get("sdp"), str):
                        raise SignallingError4xx("invalid_sdp", "offer needs an `sdp` string")
                    room = (node.echo_room(joined.session, joined.site) if joined.echo
                            else node.room(joined.session, joined.host, joined.record))
                    try:
                        leg, answer = await room.join(joined.site, msg["sdp"])
                    except SignallingError as exc:
                        raise SignallingError4xx("invalid_sdp", str(exc)) from None
                    joined.leg = leg
                    leg.on_program = lambda p: send(_program_msg(p))
                    send({"type": "answer", "sdp": answer})
                elif kind == "leave":
                    break
                else:
                    raise SignallingError4xx("unknown_type", f"unknown message type {kind!r}")
            except SignallingError4xx as exc:
                error(exc.code, exc.detail)
    finally:
        if joined is not None and joined.leg is not None:
            try:
                await asyncio.shield(node.drop_leg(joined.room_key, joined.leg))
            except asyncio.CancelledError:
                pass  # the node finishes closing the leg; this handler is done either way
        writer_task.cancel()
        await asyncio.gather(writer_task, return_exceptions=True)
        await ws.close()
    return ws


def _program_msg(p: Program) -> dict[str, Any]:
    return {"type": "program", "video": list(p.video), "audio": p.audio}
