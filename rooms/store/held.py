"""What a stored session holds in each of its occurrences, parsed once per revision.

A session row keeps its media plan and its sites; `session_occurrence` keeps
its time windows with the session's revision. Admission reads the
occurrences in a window and looks each session's holdings up here, so a
booking neither stores one row per link nor parses a plan twice.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from rooms.admission import Accepted
from rooms.ids import Direction, LinkId, NodeId, RoomId, SiteId


@dataclass(frozen=True)
class Held:
    links: tuple[tuple[LinkId, Direction, int], ...]  # (link, direction, kbps), kbps > 0
    rooms: tuple[tuple[SiteId, RoomId], ...]
    nodes: tuple[tuple[NodeId, int], ...]  # (media node, legs)
    link_ids: frozenset[LinkId] = frozenset()  # for a quick "does it touch these links?"
    # link -> ((direction, kbps), ...): admission visits only the links a request shares
    by_link: dict[LinkId, tuple[tuple[Direction, int], ...]] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "link_ids", frozenset(l for l, _d, _k in self.links))
        by: dict[LinkId, list[tuple[Direction, int]]] = {}
        for l, d, k in self.links:
            by.setdefault(l, []).append((d, k))
        object.__setattr__(self, "by_link", {l: tuple(v) for l, v in by.items()})


def held_from_decision(acc: Accepted) -> Held:
    return Held(
        tuple((l.link, l.direction, l.kbps) for l in acc.plan.loads if l.kbps > 0),
        tuple(acc.rooms.items()),
        tuple((n, legs) for n, legs in acc.plan.node_legs.items() if legs > 0))


def held_from_row(plan_json: str, sites_json: str) -> Held:
    """The same holdings, from the JSON a session row stores (MediaPlan.to_dict and its sites)."""
    plan: dict[str, Any] = json.loads(plan_json)
    given = plan.get("rooms_given") or {}  # rooms given up for an emergency: held by it now, not by this session
    links: list[tuple[LinkId, Direction, int]] = []
    for row in plan["links"]:
        for d in Direction:
            if (kbps := int(row[f"{d.value}_kbps"])) > 0:
                links.append((LinkId(row["link"]), d, kbps))
    return Held(
        tuple(links),
        tuple((SiteId(x["site"]), RoomId(x["room"])) for x in json.loads(sites_json) if x["site"] not in given),
        tuple((NodeId(n), int(legs)) for n, legs in plan["node_legs"].items() if int(legs) > 0))


class HeldMemo:
    """(session id, revision) → Held. Revisions are random and never reused, so an
    entry can never describe another version of a session; a full memo is simply
    emptied (the next reads parse again)."""

    def __init__(self, limit: int = 200_000):
        self._limit = limit
        self._items: dict[tuple[str, int], Held] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str, rev: int) -> Held | None:
        return self._items.get((session_id, rev))

    def put(self, session_id: str, rev: int, held: Held) -> None:
        with self._lock:
            if len(self._items) >= self._limit:
                self._items.clear()
            self._items[(session_id, rev)] = held
