"""The operators' API: alarms (list, acknowledge), call records, a leg's history, minutes, the live feed,
and an administrator ending a leg."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from confctl.api.route import READERS, Route
from confctl.api.sessions import query_time
from confctl.auth import require
from confctl.errors import ApiError
from confctl.keys import BOOKINGS, MEDIA_NODE, OPERATIONS, QUALITY, run_db, run_read
from confctl.node_calls import end_leg_on_nodes
from rooms.end_reason import EndReason
from rooms.ids import SessionId, SiteId
from rooms.store.calls import KINDS
from rooms.store.recent_preemptions import as_events, recent_preemption_records

CDR_COLUMNS = ("id", "kind", "session_id", "site_id", "user_id", "account", "node", "caller", "direction",
               "started_at", "answered_at", "ended_at", "duration_s", "end_reason", "result_code", "avg_mos",
               "worst_mos", "avg_loss_pct", "worst_loss_pct", "avg_video", "worst_video", "avg_kbps_in", "avg_kbps_out")
HEARTBEAT_S = 15  # an SSE comment keeps proxies from closing an idle feed
HISTORY_HOURS = 12  # what a dashboard opening shows of what happened before: a shift


def _int_query(request: web.Request, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, "invalid_query", f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise ApiError(422, "invalid_query", f"{name} must be between {lo} and {hi}")
    return value


async def list_alarms(request: web.Request) -> web.Response:
    require(request)
    ops = request.app[OPERATIONS]
    open_only = request.query.get("open", "") in ("1", "true", "yes")
    rows = await run_read(request.app, ops.alarm_store.list, open_only, query_time(request, "since"),
                          _int_query(request, "limit", 1, 5000, 200))
    return web.json_response({"alarms": rows})


async def acknowledge(request: web.Request) -> web.Response:
    user = require(request)
    try:
        alarm_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such alarm") from None
    ops = request.app[OPERATIONS]
    row = await run_db(request.app, ops.alarm_store.acknowledge, alarm_id, user.name, int(time.time()))
    if row is None:
        raise ApiError(404, "not_found", f"no alarm {alarm_id}")
    ops.publish({"type": "ack", "id": alarm_id, "acked_by": row["acked_by"]})
    return web.json_response(row)


async def recent_history(request: web.Request) -> web.Response:
    """What the dashboard's panels show on opening: alarms open or raised or cleared lately, and the
    pre-emptions and restorations of the same hours, in the live feed's shape, newest first."""
    require(request)
    hours = _int_query(request, "hours", 1, 24 * 7, HISTORY_HOURS)
    since = int(time.time()) - 3600 * int(hours or HISTORY_HOURS)
    ops = request.app[OPERATIONS]
    alarms = await run_read(request.app, ops.alarm_store.recent, since, 200)
    records = await run_read(request.app, recent_preemption_records, request.app[BOOKINGS].engine, since, 2000)
    return web.json_response({"since": since, "alarms": alarms, "preemptions": as_events(records)[:100]})


async def cdrs(request: web.Request) -> web.StreamResponse:
    require(request)
    kind = request.query.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise ApiError(422, "invalid_query", f"kind must be one of {list(KINDS)}")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(422, "invalid_query", "format must be json or csv")
    site = request.query.get("site") or None
    if site is not None:
        topo = await run_read(request.app, request.app[BOOKINGS].topology)
        if site not in topo.sites:
            raise ApiError(422, "unknown_site", f"no site {site!r} in the topology")
    rows = await run_read(request.app, request.app[OPERATIONS].calls.list, request.query.get("session") or None,
                          _int_query(request, "limit", 1, 100_000, 1000), site=site, kind=kind,
                          since=query_time(request, "since"), until=query_time(request, "until"))
    for r in rows:
        start = r.get("answered_at") or r["started_at"]
        r["duration_s"] = r["ended_at"] - start if r.get("ended_at") else None
    if fmt == "json":
        return web.json_response({"cdrs": [{k: r.get(k) for k in CDR_COLUMNS} for r in rows]})
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CDR_COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(k) is None else r.get(k) for k in CDR_COLUMNS])
    return web.Response(text=out.getvalue(), content_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="confctl-cdrs.csv"'})


async def leg_history(request: web.Request) -> web.Response:
    require(request)
    q = request.query
    if not all(q.get(k) for k in ("session", "site")):
        raise ApiError(422, "invalid_query", "give session and site (and node, when the site moved)")
    pipeline = request.app[QUALITY]
    keys = [k for k in pipeline.history if k[0] == q["session"] and k[2] == q["site"]  # type: ignore[attr-defined]
            and (not q.get("node") or k[1] == q["node"])]
    samples = sorted((s for k in keys for s in pipeline.leg_history(k)), key=lambda s: s["t"])  # type: ignore[attr-defined]
    return web.json_response({"session": q["session"], "site": q["site"], "samples": samples})


async def quality_minutes(request: web.Request) -> web.Response:
    require(request)
    rows = await run_read(request.app, request.app[OPERATIONS].minutes_store.list, request.query.get("session") or None,
                          request.query.get("site") or None, query_time(request, "since"),
                          _int_query(request, "limit", 1, 100_000, 5000))
    return web.json_response({"minutes": rows})


async def operator_feed(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the current snapshot at once, then each new one, and alarm events as they happen."""
    require(request)
    ops = request.app[OPERATIONS]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    q = ops.subscribe()
    try:
        if ops.snapshot is not None:
            await resp.write(_sse(ops.snapshot))
        while True:
            try:
                msg = await asyncio.wait_for(q.get(), HEARTBEAT_S)
            except asyncio.TimeoutError:
                await resp.write(b": alive\n\n")
                continue
            await resp.write(_sse(msg))
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        pass  # the dashboard went away
    finally:
        ops.unsubscribe(q)
    return resp


def _sse(msg: dict[str, Any]) -> bytes:
    return f"event: {msg['type']}\ndata: {json.dumps(msg)}\n\n".encode()


async def end_leg(request: web.Request) -> web.Response:
    """An administrator ends one site's leg: the site's page is told and does not rejoin."""
    require(request)
    session, site = SessionId(request.match_info["id"]), SiteId(request.match_info["site"])
    ended = await request.app[MEDIA_NODE].end_leg(session, site, EndReason.ENDED_BY_ADMIN)
    if not ended:
        ended = await end_leg_on_nodes(request.app, session, site)
    if not ended:
        raise ApiError(404, "not_found", f"site {site} has no live leg in session {session}")
    return web.json_response({"ended": True, "session": session, "site": site})


routes = [
    Route("GET", "/api/alarms", list_alarms, "Alarms, newest first: raised, cleared, acknowledged", READERS,
          query=(("open", "true: only alarms not cleared"), ("since", "raised at or after (ISO 8601)"),
                 ("limit", "at most this many (200)"))),
    Route("POST", "/api/alarms/{id}/ack", acknowledge, "Acknowledge an alarm (it stays until it clears)", READERS,
          responses={200: "the alarm", 404: "no such alarm"}),
    Route("GET", "/api/operator/history", recent_history, "What the dashboard shows on opening: alarms open, raised "
          "or cleared lately, and the pre-emptions and restorations of those hours (newest first)", READERS,
          query=(("hours", "how far back (12, at most 168)"),)),
    Route("GET", "/api/cdrs", cdrs, "Call records of every leg (browser, phone, node-to-node), with quality", READERS,
          query=(("session", "one session's"), ("site", "one site's"), ("kind", "webrtc, sip or trunk"),
                 ("since", "started at or after"), ("until", "started before"), ("format", "json (default) or csv"),
                 ("limit", "at most this many (1000)"))),
    Route("GET", "/api/legs/history", leg_history, "A leg's samples over the last 15 minutes", READERS,
          query=(("session", "the session"), ("site", "the site, or a trunk's child->parent"), ("node", "optional"))),
    Route("GET", "/api/quality/minutes", quality_minutes, "Per-minute quality aggregates of every leg (stored)",
          READERS, query=(("session", "one session's"), ("site", "one site's"), ("since", "from"), ("limit", "5000"))),
    Route("GET", "/api/operator/feed", operator_feed, "Live feed for dashboards (text/event-stream): snapshot, "
          "alarm and ack events", READERS, content_type="text/event-stream"),
    Route("POST", "/api/sessions/{id}/legs/{site}/end", end_leg, "End one site's live leg (administrators)",
          ("admin",), responses={200: "ended", 404: "no such live leg"}),
]
