"""Registered media node processes, shared by every control-plane instance."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import MediaNodeRow

MN = MediaNodeRow.__table__
ALIVE_S = 30  # a node that has not re-registered for this long is presumed gone


@dataclass(frozen=True)
class RegisteredNode:
    id: str
    url: str
    last_seen: int

    def alive(self, now: float) -> bool:
        return now - self.last_seen <= ALIVE_S


class MediaNodeStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def register(self, node_id: str, url: str, now: int) -> None:
        with write_transaction(self.engine) as conn:
            if conn.execute(update(MN).where(MN.c.id == node_id).values(url=url, last_seen=now)).rowcount == 0:
                conn.execute(insert(MN).values(id=node_id, url=url, last_seen=now))

    def all(self) -> list[RegisteredNode]:
        with read_transaction(self.engine) as conn:
            return [RegisteredNode(r.id, r.url, r.last_seen) for r in conn.execute(select(MN).order_by(MN.c.id))]

    def remove(self, node_id: str) -> bool:
        with write_transaction(self.engine) as conn:
            return conn.execute(delete(MN).where(MN.c.id == node_id)).rowcount > 0
