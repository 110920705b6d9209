"""Users and roles; their bearer tokens live in rooms/store/tokens.py (only a SHA-256 of each is stored)."""
from __future__ import annotations

import enum
import time
from typing import Any
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from rooms.email_address import EmailError, normalized_email
from rooms.ids import SiteId, UserId, new_user_id
from rooms.store.engine import read_transaction, write_transaction
from rooms.store.tables import UserRow, WebSessionRow
from rooms.text import TextKind, text_problem
from rooms.store.tokens import AT, ApiTokens, TokenError, token_hash  # noqa: F401  (token_hash: web_sessions)

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
    email: str | None = None  # where their invites go (confctl/invite_mail.py)

    def may(self, permission: str) -> bool:
        return permission in self.permissions

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role.value, "site": self.site,
                "permissions": sorted(self.permissions), "email": self.email}




class UserStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.tokens = ApiTokens(engine)  # one per store: it keeps the last uses noted between flushes

    def add(self, name: str, role: Role, site: SiteId | None, known_sites: set[str],
            permissions: tuple[str, ...] = (), days: int | None = None,
            email: str | None = None) -> tuple[User, str]:
        """Create a user; return it with its first bearer token (shown once, never stored), valid `days`
        (default 90; rooms/store/tokens.py)."""
        if not name or len(name) > 100:
            raise UserError("name must be 1-100 characters")
        problem = text_problem(name, TextKind.NAME)  # the CLI's path too, not only the API's edge check
        if problem:
            raise UserError(f"name {name!r}: {problem}")
        if role is Role.TECHNICIAN and site is None:
            raise UserError("a technician is bound to one site: give --site")
        if site is not None and site not in known_sites:
            raise UserError(f"site {site!r} is not in the topology")
        unknown = [p for p in permissions if p not in PERMISSIONS]
        if unknown:
            raise UserError(f"unknown permission(s) {unknown}; known: {list(PERMISSIONS)}")
        address = _checked_email(email) if email is not None else None
        user = User(new_user_id(), name, role, site, frozenset(permissions), address)
        now = int(time.time())
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(insert(UT).values(id=user.id, name=name, role=role.value, site_id=site, email=address,
                                               permissions=" ".join(sorted(set(permissions))), created_at=now))
                _, token = self.tokens.issue(user.id, now, days, "first token", conn=conn)
        except IntegrityError:
            raise UserError(f"a user named {name!r} exists already") from None
        except TokenError as exc:
            raise UserError(str(exc)) from None
        return user, token

    def by_token(self, token: str, now: int | None = None) -> User | None:
        """The user of a live token (not expired, not revoked)."""
        found = self.authenticate(token, int(time.time()) if now is None else now)
        return found[0] if found else None

    def authenticate(self, token: str, now: int) -> tuple[User, str] | None:
        """(the user, the token's id) of a live token."""
        use = self.tokens.authenticate(token, now)
        if use is None:
            return None
        user = self.by_id(use.user_id)
        return (user, use.token_id) if user is not None else None

    def by_name(self, name: str) -> User | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(UT).where(UT.c.name == name)).first()
        return _user(r) if r else None

    def by_id(self, user_id: str) -> User | None:
        with read_transaction(self.engine) as conn:
            r = conn.execute(select(UT).where(UT.c.id == user_id)).first()
        return _user(r) if r else None

    def list(self) -> list[User]:
        with read_transaction(self.engine) as conn:
            return [_user(r) for r in conn.execute(select(UT).order_by(UT.c.name))]

    def set_email(self, user_id: str, email: str | None) -> User | None:
        """Sets (None: clears) a user's e-mail address; the user as changed, None if there is no such user."""
        address = _checked_email(email) if email is not None else None
        with write_transaction(self.engine) as conn:
            if conn.execute(update(UT).where(UT.c.id == user_id).values(email=address)).rowcount == 0:
                return None
            r = conn.execute(select(UT).where(UT.c.id == user_id)).first()
        return _user(r) if r else None

    def remove_named(self, name: str) -> bool:
        """Removes the user with their tokens and browser sessions."""
        with write_transaction(self.engine) as conn:
            r = conn.execute(select(UT.c.id).where(UT.c.name == name)).first()
            if r is None:
                return False
            conn.execute(delete(AT).where(AT.c.user_id == r.id))
            conn.execute(delete(WebSessionRow.__table__).where(WebSessionRow.__table__.c.user_id == r.id))
            return conn.execute(delete(UT).where(UT.c.id == r.id)).rowcount > 0


def _checked_email(email: str) -> str:
    try:
        return normalized_email(email)
    except EmailError as exc:
        raise UserError(str(exc)) from None


def _user(r) -> User:  # type: ignore[no-untyped-def]
    return User(UserId(r.id), r.name, Role(r.role), SiteId(r.site_id) if r.site_id else None,
                frozenset((r.permissions or "").split()), r.email)
