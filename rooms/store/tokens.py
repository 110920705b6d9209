"""Personal bearer tokens with a life: an expiry, a last use, revocation and rotation.

A user may hold several (a laptop's and a script's, say); only a SHA-256 of each is stored. A token
stops working when it expires or is revoked, and revoking it ends the browser sessions signed in
with it. The last use is written at most once a minute per token, on a short write of its own, so
authentication stays a read that never queues behind bookings.
"""
from __future__ import annotations

import secrets
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import ApiTokenRow, FeedTokenRow, UserRow, WebSessionRow

AT = ApiTokenRow.__table__
UT = UserRow.__table__
WS = WebSessionRow.__table__
FT = FeedTokenRow.__table__
TOKEN_PREFIX = "cct_"
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 3650
LAST_USED_EVERY_S = 60


class TokenError(ValueError):
    pass


def token_hash(token: str) -> str:
    import hashlib
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    # The prefix keeps a token from starting with "-" (token_urlsafe does, 1 in 64), which
    # argparse would read as an option in `--token TOKEN`; it also makes leaked tokens greppable.
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class TokenUse:
    """Whose a presented token is, and which of theirs."""
    user_id: str
    token_id: str


def lifetime_s(days: int | None) -> int:
    days = DEFAULT_TOKEN_DAYS if days is None else days
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise TokenError(f"a token lives 1 to {MAX_TOKEN_DAYS} days (default {DEFAULT_TOKEN_DAYS})")
    return days * 86400


class ApiTokens:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._used: dict[str, int] = {}  # token id -> last use, not written yet
        self._lock = threading.Lock()  # authentication runs on several read threads

    def issue(self, user_id: str, now: int, days: int | None = None, label: str = "token", conn: Any = None,
              not_after: int | None = None) -> tuple[str, str]:
        """A new token for the user: (its id, the token, shown once). `not_after`: it expires by then at the
        latest (a token a person makes with their own token lives no longer than that one)."""
        life = lifetime_s(days)
        token, token_id = new_token(), "tok_" + secrets.token_hex(8)
        expires = now + life if not_after is None else min(now + life, not_after)
        row = dict(id=token_id, user_id=user_id, token_hash=token_hash(token), label=label[:100], created_at=now,
                   expires_at=expires)
        if conn is not None:  # inside the caller's transaction (a new user and its first token)
            conn.execute(insert(AT).values(**row))
        else:
            with write_transaction(self.engine, lock_key=None) as c:
                if c.execute(select(UT.c.id).where(UT.c.id == user_id)).first() is None:
                    raise TokenError(f"no user {user_id}")
                c.execute(insert(AT).values(**row))
        return token_id, token

    def authenticate(self, token: str, now: int) -> TokenUse | None:
        """The token's user if it is known, not revoked and not expired. Its use is noted in memory and
        written by `flush_last_used` (a background loop): authentication stays a read, never behind a write."""
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(AT.c.id, AT.c.user_id, AT.c.last_used_at).where(
                AT.c.token_hash == token_hash(token), AT.c.revoked_at.is_(None), AT.c.expires_at > now)).first()
        if r is None:
            return None
        if r.last_used_at is None or r.last_used_at < now - LAST_USED_EVERY_S:
            with self._lock:
                self._used[r.id] = now
        return TokenUse(r.user_id, r.id)

    def flush_last_used(self) -> int:
        """Writes the last uses noted since the previous flush; how many tokens."""
        with self._lock:
            used, self._used = self._used, {}
        if used:
            try:
                with write_transaction(self.engine, lock_key=None) as conn:
                    for token_id, at in used.items():
                        conn.execute(update(AT).where(AT.c.id == token_id).values(last_used_at=at))
            except (OperationalError, sqlite3.OperationalError):
                with self._lock:  # busy: kept for the next flush (a newer use wins)
                    self._used = {**used, **self._used}
                raise
        return len(used)

    def list(self, user_id: str | None = None) -> list[dict[str, Any]]:
        q = select(AT, UT.c.name).join(UT, UT.c.id == AT.c.user_id).order_by(AT.c.created_at, AT.c.id)
        if user_id is not None:
            q = q.where(AT.c.user_id == user_id)
        with read_transaction(self.engine) as conn:
            return [{"id": r.id, "user_id": r.user_id, "user": r.name, "label": r.label, "created_at": r.created_at,
                     "expires_at": r.expires_at, "last_used_at": r.last_used_at, "revoked_at": r.revoked_at}
                    for r in conn.execute(q)]

    def owner(self, token_id: str) -> str | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(AT.c.user_id).where(AT.c.id == token_id)).first()
        return r.user_id if r else None

    def revoke(self, token_id: str, now: int) -> bool:
        """Revokes one token and ends the browser sessions signed in with it; False if unknown or revoked."""
        with write_transaction(self.engine, lock_key=None) as conn:
            done = conn.execute(update(AT).where(AT.c.id == token_id, AT.c.revoked_at.is_(None))
                                .values(revoked_at=now)).rowcount > 0
            conn.execute(delete(WS).where(WS.c.token_id == token_id))
        return done

    def revoke_user(self, user_id: str, now: int) -> int:
        """Revokes every token of the user (calendar feed tokens too: their feeds carry join links) and ends
        all their browser sessions; how many bearer tokens."""
        with write_transaction(self.engine, lock_key=None) as conn:
            n = conn.execute(update(AT).where(AT.c.user_id == user_id, AT.c.revoked_at.is_(None))
                             .values(revoked_at=now)).rowcount
            conn.execute(delete(WS).where(WS.c.user_id == user_id))
            conn.execute(delete(FT).where(FT.c.user_id == user_id))
        return n

    def expires_at(self, token_id: str) -> int | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(AT.c.expires_at).where(AT.c.id == token_id)).first()
        return r.expires_at if r else None

    def rotate(self, token_id: str, now: int, days: int | None = None, not_after: int | None = None
               ) -> tuple[str, str]:
        """A new token in place of `token_id` (same user, label and, unless `days` says otherwise, lifetime:
        a node's year stays a year), which is revoked at once. `not_after` caps its expiry."""
        with write_transaction(self.engine, lock_key=None) as conn:
            old = conn.execute(select(AT).where(AT.c.id == token_id)).first()
            if old is None or old.revoked_at is not None or old.expires_at <= now:
                raise TokenError(f"token {token_id} is unknown, revoked or expired: issue a new one instead")
            life = lifetime_s(days) if days is not None else max(86400, old.expires_at - old.created_at)
            expires = now + life if not_after is None else min(now + life, not_after)
            token, new_id = new_token(), "tok_" + secrets.token_hex(8)
            conn.execute(insert(AT).values(id=new_id, user_id=old.user_id, token_hash=token_hash(token),
                                           label=old.label, created_at=now, expires_at=expires))
            conn.execute(update(AT).where(AT.c.id == token_id).values(revoked_at=now))
            conn.execute(delete(WS).where(WS.c.token_id == token_id))
        return new_id, token

    def purge(self, now: int, keep_s: int = 30 * 86400) -> int:
        """Forgets tokens expired or revoked over `keep_s` ago (the list keeps recent ones for audits)."""
        with write_transaction(self.engine, lock_key=None) as conn:
            return conn.execute(delete(AT).where(or_(and_(AT.c.revoked_at.is_not(None), AT.c.revoked_at < now - keep_s),
                                                     AT.c.expires_at < now - keep_s))).rowcount
