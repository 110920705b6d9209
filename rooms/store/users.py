"""Users, roles and their bearer tokens (only a SHA-256 of each token is stored)."""
from __future__ import annotations

import enum
import hashlib
import secrets
import time
from typing import Any
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from rooms.ids import SiteId, UserId, new_user_id
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import UserRow

UT = UserRow.__table__


class Role(str, enum.Enum):
    ORGANIZER = "organizer"  # books, edits own sessions
    TECHNICIAN = "technician"  # bound to one site; joins
    OPERATOR = "operator"  # reads everything live
    ADMIN = "admin"  # topology, users
    NODE = "node"  # a media node process: registers itself


class UserError(ValueError):
    pass


PERMISSIONS = ("emergency",)  # open sessions above routine precedence (the duty officer)


@dataclass(frozen=True)
class User:
    id: UserId
    name: str
    role: Role
    site: SiteId | None
    permissions: frozenset[str] = frozenset()

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role.value, "site": self.site,
                "permissions": sorted(self.permissions)}


TOKEN_PREFIX = "cct_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, name: str, role: Role, site: SiteId | None, known_sites: set[str],
            permissions: tuple[str, ...] = ()) -> tuple[User, str]:
        """Create a user; return it with its bearer token (shown once, never stored)."""
        if not name or len(name) > 100:
            raise UserError("name must be 1-100 characters")
        if role is Role.TECHNICIAN and site is None:
            raise UserError("a technician is bound to one site: give --site")
        if site is not None and site not in known_sites:
            raise UserError(f"site {site!r} is not in the topology")
        unknown = [p for p in permissions if p not in PERMISSIONS]
        if unknown:
            raise UserError(f"unknown permission(s) {unknown}; known: {list(PERMISSIONS)}")
        # The prefix keeps a token from starting with "-" (token_urlsafe does, 1 in 64), which
        # argparse would read as an option in `--token TOKEN`; it also makes leaked tokens greppable.
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = User(new_user_id(), name, role, site, frozenset(permissions))
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(insert(UT).values(id=user.id, name=name, role=role.value, site_id=site,
                                               permissions=" ".join(sorted(set(permissions))),
                                               token_hash=token_hash(token), created_at=int(time.time())))
        except IntegrityError:
            raise UserError(f"a user named {name!r} exists already") from None
        return user, token

    def by_token(self, token: str) -> User | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(UT).where(UT.c.token_hash == token_hash(token))).first()
        return _user(r) if r else None

    def by_id(self, user_id: str) -> User | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(UT).where(UT.c.id == user_id)).first()
        return _user(r) if r else None

    def list(self) -> list[User]:
        with read_transaction(self.engine) as conn:
            return [_user(r) for r in conn.execute(select(UT).order_by(UT.c.name))]

    def remove_named(self, name: str) -> bool:
        with write_transaction(self.engine) as conn:
            return conn.execute(delete(UT).where(UT.c.name == name)).rowcount > 0


def _user(r) -> User:  # type: ignore[no-untyped-def]
    return User(UserId(r.id), r.name, Role(r.role), SiteId(r.site_id) if r.site_id else None,
                frozenset((r.permissions or "").split()))
