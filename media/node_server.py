"""A media node as its own process: `confctl media-node --control URL`.

It registers with the control plane (and re-registers every few seconds as a
heartbeat), receives the key that signs grants, and serves legs at /ws for
grants only. A session that spans several node processes is linked at /trunk:
each child node dials its session's root node there (media/cascade_link.py).
The control plane reads its figures at /figures.

Recorded sessions are written under `recordings` (by default the control
plane's own folder, so on one machine its API lists them; across machines,
give both the same shared storage). What a killed node left half-written is
recovered when it starts again.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ValidationError

from media.aiortc_hooks import ice_addressing
from media.cascade_link import serve_trunk
from media.contracts.browser import Join
from media.contracts.node import (FIGURES_PATH, HEALTH_PATH, LEGS_END_PATH, LEGS_PLAN_PATH, REGISTER_PATH, TRUNK_PATH,
                                  WS_PATH, EndLeg, FollowPlan, Health, LegEnded, NodeFigures, NodeLoad, Problem,
                                  NodeRegistered, NodeRegistration)
from media.grants import InvalidGrant, verify_control, verify_grant
from media.node import MediaNode
from media.recording import recover_interrupted, set_owner
from media.signalling import WsError, serve
from supervision import TaskGroup
from media.tls import verification_failure
from rooms.booking_form import validation_detail
from rooms.ids import NodeId
from rooms.node_liveness import HEARTBEAT_S

log = logging.getLogger("media.node_server")
# Beats every HEARTBEAT_S. The control plane takes a silent node for down when its silence is unlikely for the
# intervals its beats taught (phi accrual) and a direct probe of /health fails too (rooms/node_liveness.py).

NODE = web.AppKey("media_node", MediaNode)
KEY = web.AppKey("node_key", bytearray)  # filled at registration
TASKS = web.AppKey("task_group", TaskGroup)
REFUSED = web.AppKey("refused", list)  # the status of the control plane's last refusal, while it refuses


async def _register_forever(app: web.Application, control: str, token: str, node_id: str, public_url: str,
                            registered: asyncio.Event, heartbeat_s: float = HEARTBEAT_S) -> None:
    """Register, then re-register every heartbeat. A control plane that is down or answers nonsense
    is logged and retried here; anything else ends this coroutine, and its TaskGroup restarts it."""
    timeout = aiohttp.ClientTimeout(total=max(2.0, heartbeat_s))  # a hung control plane is a failed beat
    meter = LoadMeter(app[NODE])
    said = ""  # the last failure logged
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as http:
        while True:
            try:
                beat = NodeRegistration(id=NodeId(node_id), url=public_url, load=meter.sample(time.monotonic()))
                async with http.post(f"{control}{REGISTER_PATH}", json=beat.model_dump(mode="json")) as r:
                    if r.status != 200:
                        log.error("control plane refused registration: %s", await r.text())
                        app[REFUSED].append(r.status)  # /health says so: the control plane's probe sees it down
                    else:
                        answer = NodeRegistered.model_validate_json(await r.read())
                        app[REFUSED].clear()
                        app[KEY][:] = bytes.fromhex(answer.grant_key)
                        if not registered.is_set():
                            log.info("registered with %s as %s at %s", control, node_id, public_url)
                            registered.set()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError) as exc:
                # control plane down, slow, or answering what is not a registration: keep serving, retry
                why = verification_failure(exc, control) or f"registration with {control} failed: {exc!r}"
                if why != said:  # one line per cause, not one every beat
                    log.log(logging.ERROR if why.startswith("TLS") else logging.WARNING, "%s", why)
                said = why
            else:
                said = ""
            await asyncio.sleep(heartbeat_s)


def _ports_refused() -> int:
    policy = ice_addressing()
    return policy.ports.refused if policy is not None else 0


class LoadMeter:
    """The node's load between two beats: legs and rooms now, CPU and kbit/s from counter deltas."""

    def __init__(self, node: MediaNode):
        self.node = node
        self._last: tuple[float, float, int, int] | None = None  # (time, cpu seconds, bytes in, bytes out)

    def sample(self, now: float) -> NodeLoad:
        rooms = self.node.session_rooms()
        legs = [leg for room in rooms for leg in room.legs.values()]
        bytes_in = sum(src.bytes for leg in legs for src in leg.sources.values())
        bytes_out = sum(t.bytes_forwarded for leg in legs for t in [*leg.video_out, leg.audio_out] if t is not None)
        t = os.times()
        cpu = t.user + t.system
        load = NodeLoad(legs=len(legs) + sum(len(r.phones) for r in rooms), rooms=len(rooms), cpu_percent=0.0,
                        kbps_in=0, kbps_out=0, media_ports_refused=_ports_refused())
        if self._last is not None and now > self._last[0]:
            dt = now - self._last[0]
            load.cpu_percent = round(100 * max(0.0, cpu - self._last[1]) / dt, 1)
            load.kbps_in = max(0, round(8 * (bytes_in - self._last[2]) / dt / 1000))
            load.kbps_out = max(0, round(8 * (bytes_out - self._last[3]) / dt / 1000))
        self._last = (now, cpu, bytes_in, bytes_out)
        return load


def make_node_app(control: str, token: str, node_id: str, public_url: str,
                  recordings: Path = Path("var/recordings"), heartbeat_s: float = HEARTBEAT_S) -> web.Application:
    app = web.Application()
    app[KEY] = bytearray()
    app[REFUSED] = []
    app[NODE] = MediaNode(recordings=recordings, node_id=NodeId(node_id), grant_key=lambda: bytes(app[KEY]))
    app[TASKS] = TaskGroup(f"media node {node_id}")

    async def authorize(join: Join) -> object:
        if not app[KEY]:
            raise WsError("not_ready", "this node has not registered with its control plane yet")
        try:
            return verify_grant(bytes(app[KEY]), join.grant, time.time(), node_id)
        except InvalidGrant as exc:
            raise WsError("invalid_grant", str(exc)) from None

    async def ws(request: web.Request) -> web.WebSocketResponse:
        return await serve(request, app[NODE], authorize)  # type: ignore[arg-type]

    async def trunk(request: web.Request) -> web.WebSocketResponse:
        if not app[KEY]:
            raise web.HTTPServiceUnavailable(text="this node has not registered with its control plane yet")
        return await serve_trunk(request, app[NODE], lambda: bytes(app[KEY]), node_id)

    async def from_control_plane(request: web.Request) -> bool:
        """A call signed with this node's key for this node, method, path and body, not yet expired
        (media/grants.py)."""
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return verify_control(bytes(app[KEY]), given, node_id, request.method, request.path, time.time(),
                              await request.read())

    def forbidden() -> web.Response:
        return _json(Problem(error="forbidden", detail="the control plane's key is required"), 403)

    async def figures(request: web.Request) -> web.Response:
        if not await from_control_plane(request):
            return forbidden()
        return _json(NodeFigures(node=NodeId(node_id), sessions=await app[NODE].live_figures(time.monotonic()),
                                 ended=app[NODE].ended_legs()))

    async def end_leg(request: web.Request) -> web.Response:
        if not await from_control_plane(request):
            return forbidden()
        try:
            body = EndLeg.model_validate_json(await request.read())
        except ValidationError as exc:
            return _invalid(exc)
        return _json(LegEnded(ended=await app[NODE].end_leg(body.session, body.site)))

    async def follow_plan(request: web.Request) -> web.Response:
        if not await from_control_plane(request):
            return forbidden()
        try:
            body = FollowPlan.model_validate_json(await request.read())
        except ValidationError as exc:
            return _invalid(exc)
        return _json(await app[NODE].follow_plan(body.session, dict(body.layouts), list(body.dropped), body.why))

    async def health(request: web.Request) -> web.Response:
        # A node whose credential the control plane refuses (expired, revoked) cannot be placed on: it answers
        # 503, so the control plane's probe takes it for down instead of alive but silent.
        refused = bool(app[REFUSED])
        return _json(Health(ok=app[TASKS].healthy and not refused, registered=bool(app[KEY]),
                            registration_refused=refused, rooms=len(app[NODE].session_rooms()),
                            tasks=app[TASKS].status()), 503 if refused else 200)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        set_owner(node_id)
        await asyncio.to_thread(recover_interrupted, recordings, node_id)  # before any room records
        registered = asyncio.Event()
        app[TASKS].keep_alive(lambda: _register_forever(app, control.rstrip("/"), token, node_id, public_url,
                                                        registered, heartbeat_s), "heartbeat")
        yield
        await app[TASKS].close()
        await app[NODE].close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get(WS_PATH, ws)
    app.router.add_get(TRUNK_PATH, trunk)
    app.router.add_get(FIGURES_PATH, figures)
    app.router.add_post(LEGS_END_PATH, end_leg)
    app.router.add_post(LEGS_PLAN_PATH, follow_plan)
    app.router.add_get(HEALTH_PATH, health)
    return app


def _json(body: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=body.model_dump_json(), status=status, content_type="application/json")


def _invalid(exc: ValidationError) -> web.Response:
    """A body that is not of the contract: 422 with what was wrong, as the control plane's API says it."""
    return _json(Problem(error="invalid", detail=validation_detail(exc)), 422)
