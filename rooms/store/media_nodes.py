"""Registered media node processes, shared by every control-plane instance.

Each beat refreshes `last_seen` and teaches the node's interval statistics; whether a silent node is
down is judged by rooms/node_liveness.py (phi accrual, then a direct probe) in confctl/node_watch.py,
which writes `down_since`. A beat clears it: the node is up again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from rooms.node_liveness import HARD_DOWN_S, HEARTBEAT_S, Arrivals, first_arrivals
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import MediaNodeRow

MN = MediaNodeRow.__table__


@dataclass(frozen=True)
class RegisteredNode:
    id: str
    url: str
    last_seen: int
    load: dict[str, Any] | None = None  # legs, rooms, cpu_percent, kbps_in, kbps_out at its last beat
    last_seen_s: float = 0.0  # to the millisecond
    arrivals: Arrivals = first_arrivals(HEARTBEAT_S)
    down_since: int | None = None
    last_seen_ms: int | None = None  # as stored: what mark_down compares

    def alive(self, now: float) -> bool:
        """Not judged down by the watcher (and not silent for a minute, should no watcher run)."""
        return self.down_since is None and now - self.last_seen <= HARD_DOWN_S

    def silence(self, now: float) -> float:
        return now - (self.last_seen_s or self.last_seen)


class MediaNodeStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def register(self, node_id: str, url: str, now: float, load: dict[str, Any] | None = None) -> None:
        """A beat: the node is up, and the interval since its last beat is learned."""
        now_ms = int(now * 1000)
        values = {"url": url, "last_seen": int(now), "last_seen_ms": now_ms, "down_since": None,
                  "load_json": json.dumps(load) if load is not None else None}
        with write_transaction(self.engine) as conn:
            prev = conn.execute(select(MN.c.last_seen_ms, MN.c.interval_mean_s, MN.c.interval_var_s2)
                                .where(MN.c.id == node_id)).first()
            if prev is None:
                learned = first_arrivals(HEARTBEAT_S)
                conn.execute(insert(MN).values(id=node_id, interval_mean_s=learned.mean_s,
                                               interval_var_s2=learned.var_s2, **values))
                return
            learned = _arrivals(prev.interval_mean_s, prev.interval_var_s2)
            if prev.last_seen_ms is not None:
                learned = learned.after((now_ms - prev.last_seen_ms) / 1000)
            conn.execute(update(MN).where(MN.c.id == node_id).values(
                interval_mean_s=learned.mean_s, interval_var_s2=learned.var_s2, **values))

    def mark_down(self, node_id: str, now: int, last_seen_ms: int | None) -> bool:
        """Judged down, unless it beat again since it was judged (then it is up: False)."""
        same = MN.c.last_seen_ms.is_(None) if last_seen_ms is None else MN.c.last_seen_ms == last_seen_ms
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(update(MN).where(MN.c.id == node_id, MN.c.down_since.is_(None), same)
                                .values(down_since=now)).rowcount > 0

    def all(self) -> list[RegisteredNode]:
        with read_transaction(self.engine) as conn:
            return [RegisteredNode(r.id, r.url, r.last_seen, json.loads(r.load_json) if r.load_json else None,
                                   (r.last_seen_ms or r.last_seen * 1000) / 1000,
                                   _arrivals(r.interval_mean_s, r.interval_var_s2), r.down_since, r.last_seen_ms)
                    for r in conn.execute(select(MN).order_by(MN.c.id))]

    def remove(self, node_id: str) -> bool:
        with write_transaction(self.engine) as conn:
            return conn.execute(delete(MN).where(MN.c.id == node_id)).rowcount > 0


def _arrivals(mean: float | None, var: float | None) -> Arrivals:
    first = first_arrivals(HEARTBEAT_S)
    return Arrivals(mean if mean is not None else first.mean_s, var if var is not None else first.var_s2)
