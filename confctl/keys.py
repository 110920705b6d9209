"""Typed keys of the aiohttp app, and the executor that keeps database work off the event loop."""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from aiohttp import web

from confctl.config import Settings
from media.node import MediaNode
from supervision import TaskGroup
from monitoring.operations import Operations
from rooms.store.bookings import BookingStore
from rooms.store.media_nodes import MediaNodeStore
from rooms.store.tokens import ApiTokens
from rooms.store.users import UserStore
from rooms.store.web_sessions import FeedTokens, WebSessions

T = TypeVar("T")

SETTINGS = web.AppKey("settings", Settings)
BOOKINGS = web.AppKey("bookings", BookingStore)
USER_STORE = web.AppKey("users", UserStore)
WEB_SESSIONS = web.AppKey("web_sessions", WebSessions)  # browsers' sign-ins
FEED_TOKENS = web.AppKey("feed_tokens", FeedTokens)  # calendar feed tokens
API_TOKENS = web.AppKey("api_tokens", ApiTokens)  # personal bearer tokens
DB_EXECUTOR = web.AppKey("db_executor", ThreadPoolExecutor)  # writes: bookings, topology, SIP, call records
# Auth and reads get threads of their own, so a long write (a topology re-admission, a SIP
# worker's batch) never queues every API call behind it.
READ_EXECUTOR = web.AppKey("read_executor", ThreadPoolExecutor)
JOIN_SECRET = web.AppKey("join_secret", bytes)
NODE_KEY = web.AppKey("node_key", bytes)  # signs grants for media node processes
NODE_STORE = web.AppKey("node_store", MediaNodeStore)
MEDIA_NODE = web.AppKey("media_node", MediaNode)
SIP_STORE = web.AppKey("sip_store", object)  # rooms.store.sip.SipStore
SIP_ENDPOINT = web.AppKey("sip_endpoint", object)  # sip_stub.endpoint.SipEndpoint, when SIP runs
SIP_GATEWAY = web.AppKey("sip_gateway", object)  # sip_stub.gateway.Gateway, when SIP runs
SIP_WORKERS = web.AppKey("sip_workers", object)  # sip_stub.workers.SipWorkers, when SIP runs
SIP_SERVICE = web.AppKey("sip_service", object)  # sip_stub.service.SipService, when SIP runs: dial_out
SIP_GUESS_BUS = web.AppKey("sip_guess_bus", object)  # confctl.guess_bus.GuessBus, when SIP runs on PostgreSQL
LEASE = web.AppKey("lease", object)  # confctl.lease.LeaseKeeper: does this instance hold the work lease
BACKGROUND = web.AppKey("background", TaskGroup)  # loops that must live: supervised, shown in /api/health
QUALITY = web.AppKey("quality", object)  # monitoring.pipeline.QualityPipeline
OPERATIONS = web.AppKey("operations", Operations)  # alarms, call records, minutes, the dashboards' live push
COMPOSITES = web.AppKey("composites", object)  # confctl.api.recordings.CompositeJobs


async def run_db(app: web.Application, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call on the app's database threads."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[DB_EXECUTOR], functools.partial(fn, *args, **kwargs))


async def run_read(app: web.Application, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking read (auth, listings) on threads that writes never occupy."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[READ_EXECUTOR], functools.partial(fn, *args, **kwargs))
