"""Browser sign-in sessions (an HttpOnly cookie) and calendar feed tokens.

Both are random values of which only a SHA-256 is stored, like users' bearer tokens; a sign-out
or a revocation deletes the row, so the value stops working at once.
"""
from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from rooms.ids import UserId
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import FeedTokenRow, WebSessionRow
from rooms.store.tokens import AT, token_hash

WS = WebSessionRow.__table__
FT = FeedTokenRow.__table__
FEED_PREFIX = "ccf_"


class WebSessions:
    def __init__(self, engine: Engine):
        self.engine = engine

    def open(self, user_id: UserId, now: int, lifetime_s: int, token_id: str | None = None) -> str:
        """A browser session for the user, ended with the token it signed in with (`token_id`)."""
        value = secrets.token_urlsafe(32)
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(delete(WS).where(WS.c.expires_at < now))  # expired ones go as new ones come
            conn.execute(insert(WS).values(token_hash=token_hash(value), user_id=user_id, created_at=now,
                                           expires_at=now + lifetime_s, token_id=token_id))
        return value

    def user_of(self, value: str, now: int) -> str | None:
        found = self.session_of(value, now)
        return found[0] if found else None

    def session_of(self, value: str, now: int) -> tuple[str, str | None] | None:
        """(user id, the token it signed in with) of a live browser session. A session lives no longer than
        its token: one whose token expired or was revoked is over, whatever its own 12 hours say."""
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(WS.c.user_id, WS.c.token_id, AT.c.id.label("live_token"))
                .select_from(WS.outerjoin(AT, (AT.c.id == WS.c.token_id) & AT.c.revoked_at.is_(None)
                                          & (AT.c.expires_at > now)))
                .where(WS.c.token_hash == token_hash(value), WS.c.expires_at > now)).first()
        if row is None or row.token_id is not None and row.live_token is None:
            return None
        return row.user_id, row.token_id

    def close(self, value: str) -> None:
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(delete(WS).where(WS.c.token_hash == token_hash(value)))


class FeedTokens:
    def __init__(self, engine: Engine):
        self.engine = engine

    def issue(self, user_id: UserId, label: str, now: int, scope: str = "calendar") -> tuple[str, str]:
        """A new feed token: (its id, the token, shown once)."""
        token = FEED_PREFIX + secrets.token_urlsafe(32)
        token_id = "feed_" + secrets.token_hex(8)
        with write_transaction(self.engine, lock_key=None) as conn:
            conn.execute(insert(FT).values(id=token_id, token_hash=token_hash(token), user_id=user_id, scope=scope,
                                           label=label, created_at=now))
        return token_id, token

    def user_of(self, token: str, scope: str = "calendar") -> str | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(FT.c.user_id).where(FT.c.token_hash == token_hash(token),
                                                          FT.c.scope == scope)).first()
        return row.user_id if row else None

    def list(self, user_id: str) -> list[dict[str, Any]]:
        with read_transaction(self.engine) as conn:
            return [{"id": r.id, "label": r.label, "scope": r.scope, "created_at": r.created_at}
                    for r in conn.execute(select(FT).where(FT.c.user_id == user_id).order_by(FT.c.created_at))]

    def revoke(self, user_id: str, token_id: str) -> bool:
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(delete(FT).where(FT.c.id == token_id, FT.c.user_id == user_id)).rowcount > 0
