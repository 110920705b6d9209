"""Registered media node processes, shared by every control-plane instance."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import MediaNodeRow

MN = MediaNodeRow.__table__
# A node beats every 2 s (media/node_server.py): 4 s without a beat (last_seen is whole seconds,
# so at most 5 s after its last one) marks it down.
ALIVE_S = 4


@dataclass(frozen=True)
class RegisteredNode:
    id: str
    url: str
    last_seen: int
    load: dict[str, Any] | None = None  # legs, rooms, cpu_percent, kbps_in, kbps_out at its last beat

    def alive(self, now: float) -> bool:
        return now - self.last_seen <= ALIVE_S


class MediaNodeStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def register(self, node_id: str, url: str, now: int, load: dict[str, Any] | None = None) -> None:
        values = {"url": url, "last_seen": now, "load_json": json.dumps(load) if load is not None else None}
        with write_transaction(self.engine) as conn:
            if conn.execute(update(MN).where(MN.c.id == node_id).values(**values)).rowcount == 0:
                conn.execute(insert(MN).values(id=node_id, **values))

    def all(self) -> list[RegisteredNode]:
        with read_transaction(self.engine) as conn:
            return [RegisteredNode(r.id, r.url, r.last_seen, json.loads(r.load_json) if r.load_json else None)
                    for r in conn.execute(select(MN).order_by(MN.c.id))]

    def remove(self, node_id: str) -> bool:
        with write_transaction(self.engine) as conn:
            return conn.execute(delete(MN).where(MN.c.id == node_id)).rowcount > 0
