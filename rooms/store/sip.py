"""SIP accounts (bound to sites) and registrations, shared by every instance."""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from rooms.store.engine import BINDINGS_LOCK_KEY, read_transaction, write_transaction
from rooms.store.tables import SipAccountRow, SipBindingRow, SipNonceUseRow

SA = SipAccountRow.__table__
SB = SipBindingRow.__table__
SN = SipNonceUseRow.__table__
# A UDP client retransmits one request for up to 64*T1 = 32 s (RFC 3261 §17.1.2.2); the same
# nonce use from the same request within that is a retransmission, not a replay.
RETRANSMISSION_WINDOW_S = 32
USERNAME = re.compile(r"[A-Za-z0-9_.\-+]{1,64}")  # fullmatch: `$` would let a trailing newline through
MAX_CONTACTS = 10  # registered contacts kept per account (kamailio's max_contacts); the newest win


class SipAccountError(ValueError):
    pass


@dataclass(frozen=True)
class SipAccount:
    username: str
    site: str
    realm: str
    ha1_md5: str
    ha1_sha256: str


@dataclass(frozen=True)
class Binding:
    contact: str
    expires_at: int
    call_id: str
    cseq: int


@dataclass(frozen=True)
class NonceUse:
    """One accepted digest response: its nonce and nonce-count, the request that sent it, and until
    when the nonce is valid (after that it is refused as stale anyway, so the row can go)."""
    nonce: str
    nc: str
    request_id: str
    expires_at: int


@dataclass(frozen=True)
class BindingUpdate:
    username: str
    changes: list[tuple[str, int]]
    call_id: str
    cseq: int
    now: int
    remove_all: bool = False
    nonce_use: NonceUse | None = None  # refused as a replay if this (nonce, nc) served another request


class Replayed:
    """The result for a BindingUpdate whose digest was used before: nothing was changed."""


REPLAYED = Replayed()


def _replays(conn: Any, uses: list[tuple[int, NonceUse]], now: int) -> set[int]:
    """Which of the uses (index, use) repeat a (nonce, nc) another request used, or an old one;
    records the new ones. Runs inside the caller's write transaction."""
    if not uses:
        return set()
    conn.execute(delete(SN).where(SN.c.expires_at < now))
    nonces = sorted({u.nonce for _, u in uses})
    seen = {(r.nonce, r.nc): (r.request_id, r.used_at)
            for r in conn.execute(select(SN).where(SN.c.nonce.in_(nonces)))}
    replayed: set[int] = set()
    fresh: dict[tuple[str, str], dict[str, object]] = {}
    for i, u in uses:
        key = (u.nonce, u.nc)
        if key in seen:
            request_id, used_at = seen[key]
            if request_id != u.request_id or now - used_at > RETRANSMISSION_WINDOW_S:
                replayed.add(i)
            continue
        seen[key] = (u.request_id, now)
        fresh[key] = {"nonce": u.nonce, "nc": u.nc, "request_id": u.request_id, "used_at": now,
                      "expires_at": u.expires_at}
    if fresh:
        conn.execute(insert(SN), list(fresh.values()))
    return replayed


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    h = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return h(f"{username}:{realm}:{password}".encode()).hexdigest()


class SipStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add_account(self, username: str, site: str, password: str, realm: str) -> SipAccount:
        if not USERNAME.fullmatch(username):
            raise SipAccountError("username: 1-64 of letters, digits and _ . - +")
        if len(password) < 8:
            raise SipAccountError("password: at least 8 characters")
        acc = SipAccount(username, site, realm, ha1("MD5", username, realm, password),
                         ha1("SHA-256", username, realm, password))
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(insert(SA).values(username=username, site_id=site, realm=realm, ha1_md5=acc.ha1_md5,
                                               ha1_sha256=acc.ha1_sha256, created_at=int(time.time())))
        except IntegrityError:
            raise SipAccountError(f"SIP account {username!r} exists already") from None
        return acc

    def remove_account(self, username: str) -> bool:
        with write_transaction(self.engine, BINDINGS_LOCK_KEY) as conn:  # no REGISTER re-adds a binding meanwhile
            conn.execute(delete(SB).where(SB.c.username == username))
            return conn.execute(delete(SA).where(SA.c.username == username)).rowcount > 0

    def account(self, username: str) -> SipAccount | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(SA).where(SA.c.username == username)).first()
        return SipAccount(r.username, r.site_id, r.realm, r.ha1_md5, r.ha1_sha256) if r else None

    def accounts(self) -> list[SipAccount]:
        with read_transaction(self.engine) as conn:
            return [SipAccount(r.username, r.site_id, r.realm, r.ha1_md5, r.ha1_sha256)
                    for r in conn.execute(select(SA).order_by(SA.c.username))]

    def bindings(self, username: str, now: int) -> list[Binding]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(SB).where(SB.c.username == username, SB.c.expires_at > now).order_by(SB.c.id))
            return [Binding(r.contact, r.expires_at, r.call_id, r.cseq) for r in rows]

    def update_bindings(self, username: str, changes: list[tuple[str, int]], call_id: str, cseq: int, now: int,
                        remove_all: bool = False) -> list[Binding]:
        """Apply a REGISTER: (contact, expires seconds; 0 removes) or remove all; return what remains."""
        return self.update_bindings_many([BindingUpdate(username, changes, call_id, cseq, now, remove_all)])[0]

    def use_nonce(self, use: NonceUse, now: int) -> bool:
        """Record one digest use (an INVITE's); False if it is a replay."""
        with write_transaction(self.engine, BINDINGS_LOCK_KEY) as conn:
            return not _replays(conn, [(0, use)], now)

    def update_bindings_many(self, updates: list["BindingUpdate"]) -> list[list[Binding] | Replayed]:
        """Several REGISTERs in one transaction and a handful of statements: one commit for the lot.

        Updates are applied in order; a later REGISTER for the same contact replaces an earlier one.
        One whose digest was used before (a replay) changes nothing and gets REPLAYED.
        """
        if not updates:
            return []
        now = max(u.now for u in updates)
        with write_transaction(self.engine, BINDINGS_LOCK_KEY) as conn:
            replayed = _replays(conn, [(i, u.nonce_use) for i, u in enumerate(updates) if u.nonce_use], now)
            kept = [u for i, u in enumerate(updates) if i not in replayed]
            results = self._apply_bindings(conn, kept, now)
        out: list[list[Binding] | Replayed] = []
        it = iter(results)
        for i in range(len(updates)):
            out.append(REPLAYED if i in replayed else next(it))
        return out

    def _apply_bindings(self, conn: Any, updates: list["BindingUpdate"], now: int) -> list[list[Binding]]:
        if not updates:
            return []
        users = sorted({u.username for u in updates})
        conn.execute(delete(SB).where(SB.c.username.in_(users), SB.c.expires_at <= now))
        cleared = [{"u": u.username} for u in updates if u.remove_all]
        if cleared:
            conn.execute(delete(SB).where(SB.c.username == bindparam("u")), cleared)
        # one delete per (account, contact), however often the batch re-registers it
        replaced = [{"u": u, "c": c} for u, c in dict.fromkeys((u.username, c) for u in updates for c, _ in u.changes)]
        if replaced:
            conn.execute(delete(SB).where(SB.c.username == bindparam("u"), SB.c.contact == bindparam("c")), replaced)
        latest: dict[tuple[str, str], dict[str, object]] = {}
        for u in updates:
            for contact, expires in u.changes:
                latest.pop((u.username, contact), None)
                if expires > 0:
                    latest[(u.username, contact)] = {"username": u.username, "contact": contact, "call_id": u.call_id,
                                                      "expires_at": u.now + expires, "cseq": u.cseq}
        if latest:
            conn.execute(insert(SB), list(latest.values()))
        rows = conn.execute(select(SB).where(SB.c.username.in_(users)).order_by(SB.c.id)).all()
        by_user: dict[str, list[Binding]] = {}
        ids: dict[str, list[int]] = {}
        for r in rows:
            by_user.setdefault(r.username, []).append(Binding(r.contact, r.expires_at, r.call_id, r.cseq))
            ids.setdefault(r.username, []).append(r.id)
        # Beyond MAX_CONTACTS the oldest bindings go: a phone that changes address keeps registering
        # new contacts, and the 200 that lists them all must still fit in one datagram.
        evicted = [i for user_ids in ids.values() for i in user_ids[:-MAX_CONTACTS]]
        if evicted:
            conn.execute(delete(SB).where(SB.c.id.in_(evicted)))
            by_user = {u: b[-MAX_CONTACTS:] for u, b in by_user.items()}
        return [by_user.get(u.username, []) for u in updates]
