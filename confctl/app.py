"""The aiohttp application: routes, middlewares, and the resources it owns."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from confctl.api import (calendar, dry_runs, emergencies, join_info, live, metrics, network, nodes, operators, people, recordings, tokens,
                         sessions, signin, telephony)
from confctl.api.openapi import openapi_route, ws_schema_route
from confctl.api.route import PUBLIC, Route
from confctl.auth import ROUTE_TABLE, auth_middleware, route_table
from confctl.config import Settings
from confctl.errors import error_middleware
from confctl.input_guard import input_guard_middleware
from confctl import emergency_calls, invites
from confctl.public_origin import public_origin_middleware
from confctl.keys import (BOOKINGS, COMPOSITES, QUALITY, DB_EXECUTOR, JOIN_SECRET, READ_EXECUTOR, MEDIA_NODE, NODE_KEY, NODE_STORE, OPERATIONS, SETTINGS,
                          BACKGROUND, SIP_ENDPOINT, SIP_GATEWAY, SIP_STORE, SIP_WORKERS, SIP_GUESS_BUS, SIP_SERVICE, USER_STORE, WEB_SESSIONS, FEED_TOKENS, API_TOKENS, LEASE, run_db,
                          run_read)
from confctl.page_routes import PAGES, add_pages
from confctl.signalling import websocket
from media.aiortc_hooks import IceAddressing, use_ice_addressing
from media.forwarding import forwarding_path
from media.node import MediaNode
from media.port_range import UdpPorts
from supervision import TaskGroup
from confctl.guess_bus import GuessBus
from confctl.lease import LeaseKeeper
from confctl.node_watch import watch_nodes
from rooms.store.lease import Lease
from monitoring.alarm_config import load_config
from confctl.node_figures import gather_figures
from monitoring.operations import Operations, Services
from monitoring.pipeline import QualityPipeline
from media.recording import purge_older_than, recover_interrupted, set_owner
from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.store.media_nodes import MediaNodeStore
from rooms.store.sip import SipStore
from confctl.telephony import SessionConferences
from rooms.store.calls import CallRecords
from sip_stub.endpoint import SipEndpoint
from sip_stub.workers import SipWorkers
from sip_stub.gateway import Gateway
from sip_stub.service import SipService
from rooms.store.secrets import shared_secret
from rooms.store.users import UserStore
from rooms.store.web_sessions import FeedTokens, WebSessions
from rooms.topology import load_topology_file

log = logging.getLogger("confctl")


async def health(request: web.Request) -> web.Response:
    """Liveness, and every background loop's state: one failing (backing off) makes ok false. `forwarding`:
    how this process's node forwards media (the C, or the Python path and why)."""
    groups = [request.app[BACKGROUND]]
    gateway = request.app.get(SIP_GATEWAY)
    if gateway is not None:
        groups.append(gateway.tasks)  # the SIP call watchdog
    lease = request.app.get(LEASE)
    return web.json_response({"ok": all(g.healthy for g in groups),
                              "tasks": {name: s for g in groups for name, s in g.status().items()},
                              "forwarding": forwarding_path(),
                              **({"lease": lease.status()} if lease is not None else {})})


def all_routes() -> list[Route]:
    routes: list[Route] = []
    # .ics before {id}: the dynamic {id} segment would swallow "x.ics".
    for module in (calendar, sessions, emergencies, dry_runs, network, people, live, metrics, operators, signin, join_info, recordings,
                   nodes, telephony, tokens, invites):
        routes.extend(module.routes)
    routes.append(Route("GET", "/api/health", health, "Liveness", PUBLIC))
    routes.append(ws_schema_route())
    routes.append(openapi_route(routes))
    return routes


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[DB_EXECUTOR] = ThreadPoolExecutor(settings.db_threads, thread_name_prefix="confctl-db")
    app[READ_EXECUTOR] = ThreadPoolExecutor(settings.read_threads, thread_name_prefix="confctl-read")
    engine = make_engine(settings.db_url, lock_wait_s=settings.db_lock_wait_s)
    await run_db(app, upgrade, engine)
    app[BOOKINGS] = BookingStore(engine, horizon_s=settings.horizon_days * 86400)
    app[USER_STORE] = UserStore(engine)
    app[WEB_SESSIONS] = WebSessions(engine)
    app[FEED_TOKENS] = FeedTokens(engine)
    app[API_TOKENS] = app[USER_STORE].tokens  # the same instance authentication notes last uses in
    app[JOIN_SECRET] = await run_db(app, shared_secret, engine, "join_token")
    app[NODE_KEY] = await run_db(app, shared_secret, engine, "node_grant")
    app[NODE_STORE] = MediaNodeStore(engine)
    if settings.topology_file is not None and not await run_db(app, app[BOOKINGS].has_topology):
        topo = load_topology_file(settings.topology_file)
        await run_db(app, app[BOOKINGS].set_topology, topo)
        log.info("loaded topology %s (%d sites)", settings.topology_file, len(topo.sites))
    yield
    app[DB_EXECUTOR].shutdown(wait=True)
    app[READ_EXECUTOR].shutdown(wait=True)
    engine.dispose()


async def _while_leading(app: web.Application, work: Callable[[web.Application], Awaitable[None]]) -> None:
    """Runs `work` while this instance holds the work lease (confctl/lease.py); stops it when the lease goes."""
    while True:
        while not app[LEASE].held:
            await asyncio.sleep(0.2)
        task = asyncio.create_task(work(app))
        try:
            while app[LEASE].held and not task.done():
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # the TaskGroup restarts us with backoff


async def _retention(app: web.Application) -> None:
    """Delete recordings past their retention, every six hours (the lease holder)."""
    settings = app[SETTINGS]
    while True:
        if app[LEASE].held:
            removed = await asyncio.to_thread(purge_older_than, settings.recordings_dir,
                                              settings.recording_retention_days * 86400, time.time())
            if removed:
                log.info("retention: deleted %d recording(s)", len(removed))
            await asyncio.sleep(6 * 3600)
        else:
            await asyncio.sleep(1)


async def _token_last_use(app: web.Application) -> None:
    """Every token's last use, noted by authentication in memory, written every 15 s (and at the end)."""
    try:
        while True:
            await asyncio.sleep(15)
            await run_db(app, app[API_TOKENS].flush_last_used)
    finally:
        await run_db(app, app[API_TOKENS].flush_last_used)


async def _record_retention(app: web.Application) -> None:
    """Call records, cleared alarms and per-minute quality past their retention, daily (the lease holder)."""
    s, ops = app[SETTINGS], app[OPERATIONS]
    while True:
        if not app[LEASE].held:
            await asyncio.sleep(1)
            continue
        now = int(time.time())
        gone = [await run_db(app, ops.calls.purge, now - s.call_record_retention_days * 86400),
                await run_db(app, ops.alarm_store.purge, now - s.alarm_retention_days * 86400),
                await run_db(app, ops.minutes_store.purge, now - s.quality_retention_days * 86400)]
        if any(gone):
            log.info("retention: deleted %d call record(s), %d alarm(s), %d quality minute(s)", *gone)
        await asyncio.sleep(86400)


async def _media(app: web.Application) -> AsyncIterator[None]:
    """The media node runs in-process by default; its rooms close with the app."""
    settings = app[SETTINGS]
    # Before any room records: what this instance left half-written when killed becomes playable; its
    # files carry its instance id, so another control plane's live recordings in a shared folder are not touched.
    set_owner(settings.instance_id)
    await asyncio.to_thread(recover_interrupted, settings.recordings_dir, settings.instance_id)
    pinned = settings.ice_advertise is not None or settings.ice_ports is not None
    if pinned:  # the in-process node's candidates: one address, one port range (per process, as aioice's sockets)
        previous = use_ice_addressing(IceAddressing(settings.ice_advertise, UdpPorts(settings.ice_ports)))
    app[MEDIA_NODE] = MediaNode(recordings=app[SETTINGS].recordings_dir, grant_key=lambda: app[NODE_KEY],
                                gateway_id=f"gateway-{settings.instance_id}" if settings.instance_id else None)
    instance = settings.instance_id or f"cp-{os.getpid()}"
    app[LEASE] = keeper = LeaseKeeper(Lease(app[BOOKINGS].engine), instance, lambda: app[OPERATIONS].take_over(),
                                      lambda: app[OPERATIONS].hand_over())
    app[BACKGROUND].keep_alive(lambda: _retention(app), "recordings-retention")
    app[BACKGROUND].keep_alive(lambda: _while_leading(app, watch_nodes), "media node watch")
    topo = await run_read(app, app[BOOKINGS].topology) if await run_read(app, app[BOOKINGS].has_topology) else None
    config = load_config(app[SETTINGS].alarms_file, set(topo.sites) if topo is not None else None)
    app[QUALITY] = pipeline = QualityPipeline()
    services = Services(app[BOOKINGS], app[NODE_STORE], lambda: gather_figures(app),
                        lambda fn, *a: run_db(app, fn, *a), lambda fn, *a: run_read(app, fn, *a))
    app[OPERATIONS] = operations = Operations(services, config, pipeline, app[SETTINGS].quality_sample_s,
                                              leader=lambda: keeper.held)
    await operations.start()
    app[BACKGROUND].keep_alive(keeper.run, "work lease")
    app[BACKGROUND].keep_alive(operations.run, "quality pipeline")
    app[BACKGROUND].keep_alive(lambda: _record_retention(app), "records retention")
    app[BACKGROUND].keep_alive(lambda: _token_last_use(app), "token last use")
    app[COMPOSITES] = recordings.CompositeJobs()
    app[dry_runs.DRY_RUNS] = dry_runs.DryRuns()
    app[nodes.BEATS] = nodes.BeatsInFlight()
    yield
    await app[COMPOSITES].close()
    await app[dry_runs.DRY_RUNS].close()
    await app[BACKGROUND].close()
    await operations.close()
    await app[MEDIA_NODE].close()
    if pinned:
        use_ice_addressing(previous)


async def _sip(app: web.Application) -> AsyncIterator[None]:
    """The SIP service on UDP, when a port is configured."""
    settings = app[SETTINGS]
    app[SIP_STORE] = SipStore(app[BOOKINGS].engine)
    if settings.sip_port is None:
        yield
        return
    key = await run_db(app, shared_secret, app[BOOKINGS].engine, "sip_nonce")
    blocking = lambda fn, *a, **kw: run_db(app, fn, *a, **kw)  # noqa: E731
    gateway = Gateway(SessionConferences(app), CallRecords(app[BOOKINGS].engine), blocking, settings.sip_host,
                      advertise=settings.sip_advertise, rtp_timeout_s=settings.sip_rtp_timeout_s,
                      watch_s=settings.sip_watch_s, rtp_ports=settings.rtp_ports)
    service = app[SIP_SERVICE] = SipService(app[SIP_STORE], blocking, key, digest_order=settings.sip_digest,
                                            gateway=gateway)
    loop = asyncio.get_running_loop()
    _, endpoint = await loop.create_datagram_endpoint(lambda: SipEndpoint(service),
                                                      local_addr=(settings.sip_host, settings.sip_port))
    service.endpoint = endpoint
    gateway.attach(endpoint, endpoint.transport.get_extra_info("sockname")[1])
    app[SIP_GATEWAY] = gateway
    app[SIP_ENDPOINT] = endpoint
    log.info("SIP service on udp %s:%d", *endpoint.transport.get_extra_info("sockname")[:2])
    workers = app[SIP_WORKERS] = SipWorkers(endpoint, settings.sip_workers, settings.db_url, settings.sip_digest)
    if settings.sip_workers > 0:
        await workers.start()
    bus_task = None
    if app[BOOKINGS].engine.dialect.name == "postgresql":  # other instances may share the database
        bus = app[SIP_GUESS_BUS] = GuessBus(app[BOOKINGS].engine.url, settings.instance_id or f"cp-{os.getpid()}",
                                                  stats=endpoint.stats)
        bus.attach(service)
        bus_task = asyncio.create_task(bus.run(), name="SIP guess bus")
    try:
        yield
    finally:
        if bus_task is not None:
            bus_task.cancel()
            await asyncio.gather(bus_task, return_exceptions=True)
        await workers.close()
        await service.close()  # live calls get their BYE while the socket is still open
        endpoint.close()


def make_app(settings: Settings) -> web.Application:
    # aiohttp's parser answers a header field over its limit with a plain-text 400 before any
    # middleware runs: the limit is raised so that the auth middleware sees an oversized
    # Authorization header and refuses it in JSON (431). Beyond 32 KiB aiohttp still answers itself.
    app = web.Application(middlewares=[public_origin_middleware(settings.public_url), error_middleware, auth_middleware,
                                       input_guard_middleware],
                          client_max_size=1_000_000,
                          handler_args={"max_field_size": 32768, "max_line_size": 16384})
    app[SETTINGS] = settings
    app[BACKGROUND] = TaskGroup("confctl")
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_media)
    app.cleanup_ctx.append(_sip)
    app.cleanup_ctx.append(emergency_calls.owned)  # closes before the SIP service: calls end first
    app.cleanup_ctx.append(invites.invite_mail)  # last: its queue is sent before the database closes
    routes = all_routes()
    app[ROUTE_TABLE] = route_table(routes)
    for r in routes:
        app.router.add_route(r.method, r.path, r.handler)
    add_pages(app)
    app.router.add_get("/ws", websocket)
    app.router.add_static("/static", PAGES)
    return app
