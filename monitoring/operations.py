"""The operators' side of every sample: alarms, stored minutes, call records, and the live push.

One loop (owned by the app's TaskGroup): gather the nodes' figures, sample them (pipeline.py),
then decide with pure functions (alarm_rules, alarms, summaries, dashboard) and do the I/O here:
store alarm events, minutes and call records on the database threads, hand events to the
webhooks' queues (never waiting on them), and push a snapshot to every open dashboard.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from monitoring.alarm_config import AlarmConfig
from monitoring.alarm_rules import (Absence, absence_observations, absences, leg_observations, link_observations,
                                    node_observations, running_occurrences)
from monitoring.alarm_window import leg_windows
from monitoring.alarms import AlarmEngine, AlarmEvent
from monitoring.dashboard import snapshot
from monitoring.link_load import live_link_load, utilization_rows
from monitoring.pipeline import Figures, QualityPipeline
from monitoring.summaries import MinuteAggregator, leg_quality
from monitoring.webhooks import Webhooks
from rooms.store.alarms import AlarmStore
from rooms.store.attendance import Attendance
from rooms.store.bookings import BookingStore
from rooms.store.calls import CallRecords
from rooms.store.media_nodes import MediaNodeStore
from rooms.store.quality import QualityMinutes

log = logging.getLogger("monitoring.operations")
NODE_FORGOTTEN_S = 3600  # a node silent this long was taken away, not lost: no alarm
SUBSCRIBER_QUEUE = 20  # snapshots a slow dashboard may lag behind before it skips to the newest


Blocking = Callable[..., Awaitable[Any]]  # runs a blocking store call on the service's database threads


@dataclass(frozen=True)
class Services:
    """What the loop needs from the service around it (confctl/app.py wires it)."""
    bookings: BookingStore
    nodes: MediaNodeStore
    gather: Callable[[], Awaitable[Figures]]  # every node's figures now
    write: Blocking
    read: Blocking


class Operations:
    def __init__(self, services: Services, config: AlarmConfig, pipeline: QualityPipeline, sample_s: float,
                 leader: Callable[[], bool] = lambda: True):
        engine = services.bookings.engine
        # Several control planes sample the nodes for their own dashboards; only the holder of the work
        # lease (confctl/lease.py) raises alarms, posts webhooks and writes records and aggregates.
        self.leader = leader
        self._warmup = 0  # rounds to sample before judging alarms, after taking over from another holder
        self.s, self.config, self.pipeline, self.sample_s = services, config, pipeline, sample_s
        self.alarms = AlarmEngine(config.hysteresis)
        self.alarm_store = AlarmStore(engine)
        self.minutes_store = QualityMinutes(engine)
        self.calls = CallRecords(engine)
        self.attendance = Attendance(engine)
        self.webhooks = Webhooks(config.webhooks)
        self.minutes = MinuteAggregator()
        self.raised_total: Counter[str] = Counter()
        self._alarm_ids: dict[tuple[str, str], int] = {}
        self._recorded: deque[str] = deque(maxlen=5000)  # leg ids already written (the nodes repeat them)
        self._recorded_set: set[str] = set()
        self.snapshot: dict[str, Any] | None = None
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.rounds = 0

    async def start(self) -> None:
        self.webhooks.start()

    async def take_over(self) -> None:
        """This instance now holds the work lease: the alarms left open (by the last holder, or this instance
        before a restart) are adopted as raised, so one that still holds is not raised twice and one that
        ended clears once; judging waits two rounds, until the pipeline has rates to judge."""
        rows = await self.s.read(self.alarm_store.list, True, None, 1_000_000)  # every open one, not a page
        self._alarm_ids = {}
        for row in rows:
            key = self.alarms.adopt(row)
            if key is not None:
                self._alarm_ids[key] = row["id"]
        self._warmup = 2
        if rows:
            log.info("adopted %d open alarm(s)", len(rows))

    def hand_over(self) -> None:
        """The lease is gone: what this instance tracked is the next holder's to adopt from the store."""
        self.alarms.tracked.clear()
        self._alarm_ids.clear()

    async def close(self) -> None:
        if self.leader():
            await self.s.write(self.minutes_store.write, self.minutes.flush())
        await self.webhooks.close()

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await self.round(await self.s.gather(), time.time())
            await asyncio.sleep(max(0.2, self.sample_s - (time.monotonic() - started)))

    async def round(self, figs: Figures, now: float) -> None:
        samples = self.pipeline.sample(figs.sessions, now)
        store, read = self.s.bookings, self.s.read
        topo = await read(store.topology)
        reserved = await read(store.all_link_peaks, int(now), int(now) + 1)
        rows = utilization_rows(topo, reserved, live_link_load(topo, self.pipeline.latest.values()))
        running = await read(store.list, int(now), int(now) + 1)
        leader = self.leader()
        nodes = await read(self.s.nodes.all)
        down = [(n.id, now - n.last_seen) for n in nodes if not n.alive(now) and now - n.last_seen < NODE_FORGOTTEN_S]
        observations = (leg_observations(self.config, topo, leg_windows(self.pipeline, self.config.window.samples))
                        + link_observations(self.config, topo, rows)
                        + absence_observations(self.config, topo, await self._absent(running, figs, now, leader))
                        + node_observations(down))
        if leader and self._warmup > 0:
            self._warmup -= 1
        elif leader:
            for event in self.alarms.step(observations, now):
                await self._alarm(event)
        if leader:
            await self._call_records(figs, now)
        finished = self.minutes.add(samples, now)
        if finished and leader:
            await self.s.write(self.minutes_store.write, finished)
        open_alarms = await read(self.alarm_store.list, True)
        self.snapshot = snapshot(self.config, topo, self.pipeline.latest.values(), rows, open_alarms,
                                 {s["id"]: s["title"] for s in running}, now)
        self.publish(self.snapshot)
        self.rounds += 1

    async def _absent(self, running: list[dict[str, Any]], figs: Figures, now: float, leader: bool) -> list[Absence]:
        """Booked sites that have not joined their session's running occurrence. What this instance saw (live
        legs, their history, legs the nodes say ended) answers most; for the rest the database does, which
        also knows who joined before this instance took over the work lease."""
        occurrences = running_occurrences(running, now)
        joined = self._joined_seen(figs, occurrences)
        absent = absences(running, joined, now)
        if absent and leader:
            asked = {a.session: occurrences[a.session] for a in absent}
            absent = absences(running, joined | await self.s.read(self.attendance.joined, asked), now)
        return absent

    def _joined_seen(self, figs: Figures, occurrences: dict[str, tuple[float, float]]) -> set[tuple[str, str]]:
        p, out = self.pipeline, set()
        for key in [*p.first_seen, *p.latest]:  # live (seen once, or sampled)
            if key[0] in occurrences and "->" not in key[2]:
                out.add((key[0], key[2]))
        for key, history in p.history.items():  # sampled since the occurrence began, gone since
            if key[0] in occurrences and history and history[-1].kind != "trunk" \
                    and history[-1].t >= occurrences[key[0]][0]:
                out.add((key[0], key[2]))
        for e in figs.ended:  # ended lately, as the nodes say
            span = occurrences.get(e.session)
            if span is not None and e.left_at >= span[0]:
                out.add((e.session, e.site))
        return out

    async def _alarm(self, event: AlarmEvent) -> None:
        key = (event.kind.value, event.subject)
        if event.event == "raised":
            self.raised_total[event.kind.value] += 1
            c = event.context
            alarm_id: int | None = await self.s.write(self.alarm_store.raised, {
                "kind": event.kind.value, "subject": event.subject, "session_id": c.get("session"),
                "site_id": c.get("site"), "link_id": c.get("link"), "node_id": c.get("node"), "value": event.value,
                "threshold": event.threshold, "message": event.message}, int(event.at))
            self._alarm_ids[key] = alarm_id  # type: ignore[assignment]
            log.warning("alarm raised: %s", event.message)
        else:
            alarm_id = self._alarm_ids.pop(key, None)
            if alarm_id is not None:
                await self.s.write(self.alarm_store.cleared, alarm_id, int(event.at))
            log.info("alarm cleared: %s", event.message)
        body = {**event.to_dict(), "id": alarm_id}
        self.webhooks.offer(body)
        self.publish({"type": "alarm", **body})

    async def _call_records(self, figs: Figures, now: float) -> None:
        for e in figs.ended:
            if e.id in self._recorded_set or "/echo/" in e.session:
                continue
            history = self.pipeline.history.get((e.session, str(e.node), e.site), ())
            quality = leg_quality(history, e.joined_at, e.left_at)
            if e.kind == "sip":  # the gateway keeps the phone's record; its quality is added to it
                await self.s.write(self.calls.phone_quality, e.session, e.site, quality)
            else:
                await self.s.write(self.calls.ended_leg, {
                    "call_id": e.id, "leg_id": e.id, "kind": e.kind, "direction": "in", "caller": e.site,
                    "site_id": e.site, "session_id": e.session, "node": e.node,
                    "started_at": int(e.joined_at), "answered_at": int(e.joined_at),
                    "ended_at": int(e.left_at), "end_reason": e.reason, **quality})
            self._remember(e.id)
        for key, first, last in self.pipeline.vanished:
            if not key[2].count("->"):
                continue  # a leg: its node reports its end with the reason
            leg_id = f"trunk:{key[0]}:{key[2]}:{int(first)}"
            await self.s.write(self.calls.ended_leg, {
                "call_id": leg_id, "leg_id": leg_id, "kind": "trunk", "direction": "out", "caller": key[2],
                "session_id": key[0], "node": key[1], "started_at": int(first), "answered_at": int(first),
                "ended_at": int(last), "end_reason": "closed",
                **leg_quality(self.pipeline.history.get(key, ()), first, last)})

    def _remember(self, leg_id: str) -> None:
        if len(self._recorded) == self._recorded.maxlen:
            self._recorded_set.discard(self._recorded[0])
        self._recorded.append(leg_id)
        self._recorded_set.add(leg_id)

    def announce(self, event: dict[str, Any]) -> None:
        """An event operators should see and receivers should get (a pre-emption, a restoration):
        to the webhooks' queues (never waiting) and to every open dashboard."""
        self.webhooks.offer(event)
        self.publish(event)

    # -- live push --------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(q)

    def publish(self, message: dict[str, Any]) -> None:
        for q in self.subscribers:
            if q.full():  # a dashboard that does not read: it skips what it missed
                while not q.empty():
                    q.get_nowait()
            q.put_nowait(message)
