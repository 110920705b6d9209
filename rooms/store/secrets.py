"""Shared secrets, created on first use and kept in the database so every instance agrees."""
from __future__ import annotations

import secrets

from sqlalchemy import Engine, insert, select

from rooms.store.engine import write_transaction
from rooms.store.tables import AppSecret

AS = AppSecret.__table__


def shared_secret(engine: Engine, name: str) -> bytes:
    with write_transaction(engine) as conn:  # the lock makes first creation race-free
        value = conn.execute(select(AS.c.value).where(AS.c.name == name)).scalar()
        if value is None:
            value = secrets.token_hex(32)
            conn.execute(insert(AS).values(name=name, value=value))
    return bytes.fromhex(value)
