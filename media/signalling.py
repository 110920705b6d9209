"""The signalling loop of one WebSocket: join, offer/answer, program, leave.

Shared by the control plane (which authorizes joins with site join tokens
and the database) and a standalone media node (which authorizes with grants
signed by the control plane). `authorize` turns a join message into a Grant
to serve here, or a Redirect to another node. Every message in and out is a
model of media/contracts/browser.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web
from pydantic import ValidationError

from media.cascade_session import Placement
from media.contracts import browser
from media.contracts.browser import EndedReason, ErrorCode, Join, Leave, Offer, Redirect
from media.grants import Grant
from media.node import MediaNode, WrongNode
from media.program import Program
from media.room import Leg, MediaRoom, NoMediaPorts, SignallingError
from rooms.end_reason import EndReason
from rooms.ids import SessionId, SiteId

log = logging.getLogger("media.signalling")
MAX_MESSAGE = 256 * 1024  # an SDP offer is a few kB
ENDED: dict[EndedReason, str] = {
    "replaced": "this site joined again from another window or device; this one has stopped",
    "ended_by_admin": "an administrator ended this site's connection",
    "preempted": "an emergency consultation needs this site's link: this session gave way here until it ends"}


# A field the model refuses, answered as the checks before the contract answered it (clients act on the codes).
FIELD_REFUSED: dict[str, tuple[ErrorCode, str]] = {
    "sdp": ("invalid_sdp", "offer needs an `sdp` string"),
    "token": ("invalid_token", "malformed join token"),
    "grant": ("invalid_grant", "malformed grant"),
    "mode": ("invalid_message", "mode is meeting (default) or echo"),
}


class WsError(Exception):
    """A join or message we answer with an `error` message on /ws; the connection keeps serving.
    (Not admission's Refused, the SIP gateway's CallRejected or a trunk's TrunkRejected.)"""

    def __init__(self, code: ErrorCode, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail

    def message(self) -> browser.Error:
        return browser.Error(code=self.code, detail=self.detail)


Authorize = Callable[[Join], Awaitable[Grant | Redirect]]


def read_message(text: str) -> Join | Offer | Leave:
    """One text frame as a message of the contract, or the WsError that answers it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WsError("invalid_json", str(exc)) from None
    except RecursionError:  # json's scanner recurses per nesting level
        raise WsError("invalid_json", "the message nests too deeply") from None
    try:
        return browser.TO_SERVER.validate_python(data)
    except ValidationError as exc:
        raise refusal_of(data, exc) from None


def refusal_of(data: Any, exc: ValidationError) -> WsError:
    """Why the contract refused `data`, as the error the site is told."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return WsError("invalid_message", "a message is a JSON object with a string `type`")
    first = exc.errors()[0]
    if first["type"] == "union_tag_invalid":
        return WsError("unknown_type", f"unknown message type {data['type']!r}")
    field = str(first["loc"][1]) if len(first["loc"]) > 1 else ""
    if first["type"] == "extra_forbidden":
        return WsError("invalid_message", f"a {data['type']} message has no field {field!r}")
    code, detail = FIELD_REFUSED.get(field, ("invalid_message", f"{field}: {first['msg']}"))
    return WsError(code, detail)


def _program_msg(p: Program) -> browser.ProgramUpdate:
    return browser.ProgramUpdate(video=list(p.video), audio=p.audio)


async def serve(request: web.Request, node: MediaNode, authorize: Authorize) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    outbox: asyncio.Queue[browser.Message] = asyncio.Queue(maxsize=100)
    grant: Grant | None = None
    leg: Leg | None = None
    leg_room: MediaRoom | None = None
    left = False

    async def writer() -> None:
        try:
            while True:
                await ws.send_str((await outbox.get()).model_dump_json())
        except ConnectionError:  # the client went away; the reader side ends the connection
            pass

    def send(msg: browser.Message) -> None:
        if not outbox.full():  # a client that does not read loses program updates, not the server
            outbox.put_nowait(msg)

    writer_task = asyncio.create_task(writer())
    try:
        async for raw in ws:
            if raw.type != WSMsgType.TEXT:
                if raw.type == WSMsgType.BINARY:
                    send(WsError("invalid_message", "send JSON text messages").message())
                continue
            try:
                msg = read_message(raw.data)
                if isinstance(msg, Join):
                    if grant is not None:
                        raise WsError("already_joined", f"this connection is site {grant.site}")
                    decision = await authorize(msg)
                    if isinstance(decision, Redirect):
                        send(decision)
                        continue
                    if decision.trunk:
                        raise WsError("invalid_grant", "a trunk grant opens /trunk, not a site's leg")
                    grant = decision
                    if grant.cascade is not None:
                        node.place(SessionId(grant.session), Placement.from_dict(grant.cascade))
                    send(browser.Joined(session=grant.session, site=grant.site, host=grant.host,
                                        mode="echo" if grant.echo else "meeting", notice=grant.notice or None))
                elif isinstance(msg, Offer):
                    if grant is None:
                        raise WsError("not_joined", "send join first")
                    sid, site = SessionId(grant.session), SiteId(grant.site)
                    if grant.cascade is not None:  # again: the session's last leg may have left since join,
                        node.place(sid, Placement.from_dict(grant.cascade))  # and its placement with it
                    try:
                        room = (node.echo_room(sid, site) if grant.echo
                                else node.room(sid, SiteId(grant.host), grant.record, site))
                    except WrongNode as exc:
                        raise WsError("wrong_node", str(exc)) from None
                    try:
                        leg, answer = await room.join(site, msg.sdp, grant.layout, grant.codec, grant.video_kbps)
                    except SignallingError as exc:
                        raise WsError("invalid_sdp", str(exc)) from None
                    except NoMediaPorts as exc:
                        raise WsError("no_media_ports", str(exc)) from None
                    leg_room = room
                    leg.on_program = lambda p: send(_program_msg(p))
                    leg.on_rejoin = lambda reason: send(browser.Rejoin(reason=reason))
                    leg.on_ended = lambda reason: send(browser.Ended(reason=reason, detail=ENDED[reason]))
                    leg.on_layout = lambda layout, why: send(browser.LayoutChange(layout=layout or "full", detail=why))
                    send(browser.Answer(sdp=answer))
                    if leg.program is not None:
                        # chosen while the offer was being answered, before anyone listened
                        send(_program_msg(leg.program))
                else:  # Leave
                    left = True
                    break
            except WsError as exc:
                send(exc.message())
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
