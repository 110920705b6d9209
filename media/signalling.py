"""The signalling loop of one WebSocket: join, offer/answer, program, leave.

Shared by the control plane (which authorizes joins with site join tokens
and the database) and a standalone media node (which authorizes with grants
signed by the control plane). `authorize` turns a join message into a Grant
to serve here, or a Redirect to another node.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from media.cascade_session import Placement
from media.grants import Grant
from media.node import MediaNode, WrongNode
from media.program import Program
from media.room import Leg, MediaRoom, NoMediaPorts, SignallingError
from rooms.end_reason import EndReason
from rooms.ids import SessionId, SiteId

log = logging.getLogger("media.signalling")
MAX_MESSAGE = 256 * 1024  # an SDP offer is a few kB
ENDED = {"replaced": "this site joined again from another window or device; this one has stopped",
         "ended_by_admin": "an administrator ended this site's connection",
         "preempted": "an emergency consultation needs this site's link: this session gave way here until it ends"}


class Refusal(Exception):
    """A join or message we answer with an error; the connection keeps serving."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Redirect:
    url: str  # the media node's WebSocket
    grant: str
    notice: str | None = None  # said to the site: e.g. its node is down and it joins elsewhere


Authorize = Callable[[dict[str, Any]], Awaitable[Grant | Redirect]]


def _program_msg(p: Program) -> dict[str, Any]:
    return {"type": "program", "video": list(p.video), "audio": p.audio}


async def serve(request: web.Request, node: MediaNode, authorize: Authorize) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
    grant: Grant | None = None
    leg: Leg | None = None
    leg_room: MediaRoom | None = None
    left = False

    async def writer() -> None:
        try:
            while True:
                await ws.send_json(await outbox.get())
        except ConnectionError:  # the client went away; the reader side ends the connection
            pass

    def send(msg: dict[str, Any]) -> None:
        if not outbox.full():  # a client that does not read loses program updates, not the server
            outbox.put_nowait(msg)

    writer_task = asyncio.create_task(writer())
    try:
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                if raw.type == WSMsgType.BINARY:
                    send({"type": "error", "code": "invalid_message", "detail": "send JSON text messages"})
                continue
            try:
                try:
                    msg = json.loads(raw.data)
                except json.JSONDecodeError as exc:
                    raise Refusal("invalid_json", str(exc)) from None
                except RecursionError:  # json's scanner recurses per nesting level
                    raise Refusal("invalid_json", "the message nests too deeply") from None
                if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                    raise Refusal("invalid_message", "a message is a JSON object with a string `type`")
                kind = msg["type"]
                if kind == "join":
                    if grant is not None:
                        raise Refusal("already_joined", f"this connection is site {grant.site}")
                    decision = await authorize(msg)
                    if isinstance(decision, Redirect):
                        send({"type": "redirect", "url": decision.url, "grant": decision.grant,
                              **({"notice": decision.notice} if decision.notice else {})})
                        continue
                    if decision.trunk:
                        raise Refusal("invalid_grant", "a trunk grant opens /trunk, not a site's leg")
                    grant = decision
                    if grant.cascade is not None:
                        node.place(SessionId(grant.session), Placement.from_dict(grant.cascade))
                    send({"type": "joined", "session": grant.session, "site": grant.site, "host": grant.host,
                          "mode": "echo" if grant.echo else "meeting",
                          **({"notice": grant.notice} if grant.notice else {})})
                elif kind == "offer":
                    if grant is None:
                        raise Refusal("not_joined", "send join first")
                    if not isinstance(msg.get("sdp"), str):
                        raise Refusal("invalid_sdp", "offer needs an `sdp` string")
                    sid, site = SessionId(grant.session), SiteId(grant.site)
                    if grant.cascade is not None:  # again: the session's last leg may have left since join,
                        node.place(sid, Placement.from_dict(grant.cascade))  # and its placement with it
                    try:
                        room = (node.echo_room(sid, site) if grant.echo
                                else node.room(sid, SiteId(grant.host), grant.record, site))
                    except WrongNode as exc:
                        raise Refusal("wrong_node", str(exc)) from None
                    try:
                        leg, answer = await room.join(site, msg["sdp"], grant.layout)
                    except SignallingError as exc:
                        raise Refusal("invalid_sdp", str(exc)) from None
                    except NoMediaPorts as exc:
                        raise Refusal("no_media_ports", str(exc)) from None
                    leg_room = room
                    leg.on_program = lambda p: send(_program_msg(p))
                    leg.on_rejoin = lambda reason: send({"type": "rejoin", "reason": reason})
                    leg.on_ended = lambda reason: send({"type": "ended", "reason": reason, "detail": ENDED[reason]})
                    leg.on_layout = lambda layout, why: send({"type": "layout", "layout": layout or "full", "detail": why})
                    send({"type": "answer", "sdp": answer})
                    if leg.program is not None:
                        # chosen while the offer was being answered, before anyone listened
                        send(_program_msg(leg.program))
                elif kind == "leave":
                    left = True
                    break
                else:
                    raise Refusal("unknown_type", f"unknown message type {kind!r}")
            except Refusal as exc:
                send({"type": "error", "code": exc.code, "detail": exc.detail})
    finally:
        if leg is not None and leg_room is not None:
            try:
                await asyncio.shield(node.drop_leg(leg_room, leg, EndReason.LEFT if left else EndReason.DISCONNECTED))
            except asyncio.CancelledError:
                pass  # the node finishes closing the leg; this handler is done either way
        writer_task.cancel()
        await asyncio.gather(writer_task, return_exceptions=True)
        await ws.close()
    return ws
