"""SIP accounts (bound to sites) and registrations, shared by every instance."""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import SipAccountRow, SipBindingRow

SA = SipAccountRow.__table__
SB = SipBindingRow.__table__
USERNAME = re.compile(r"^[A-Za-z0-9_.\-+]{1,64}$")


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


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    h = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
    return h(f"{username}:{realm}:{password}".encode()).hexdigest()


class SipStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add_account(self, username: str, site: str, password: str, realm: str) -> SipAccount:
        if not USERNAME.match(username):
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
        with write_transaction(self.engine) as conn:
            conn.execute(delete(SB).where(SB.c.username == username, SB.c.expires_at <= now))
            if remove_all:
                conn.execute(delete(SB).where(SB.c.username == username))
            for contact, expires in changes:
                conn.execute(delete(SB).where(SB.c.username == username, SB.c.contact == contact))
                if expires > 0:
                    conn.execute(insert(SB).values(username=username, contact=contact, expires_at=now + expires,
                                                   call_id=call_id, cseq=cseq))
            rows = conn.execute(select(SB).where(SB.c.username == username).order_by(SB.c.id))
            return [Binding(r.contact, r.expires_at, r.call_id, r.cseq) for r in rows]
