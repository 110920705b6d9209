"""Typed ids, so a site id is never passed where a link id is expected."""
from __future__ import annotations

import enum
import secrets
from typing import NewType

SiteId = NewType("SiteId", str)
RoomId = NewType("RoomId", str)
# A link is named after its child site: every non-root site has exactly one uplink.
LinkId = NewType("LinkId", str)
NodeId = NewType("NodeId", str)
SessionId = NewType("SessionId", str)
UserId = NewType("UserId", str)


class Direction(str, enum.Enum):
    UP = "up"  # child -> parent
    DOWN = "down"  # parent -> child


class PlanKind(str, enum.Enum):
    CENTRAL = "central"
    CASCADE = "cascade"


def new_session_id() -> SessionId:
    return SessionId("ses_" + secrets.token_hex(8))


def new_user_id() -> UserId:
    return UserId("usr_" + secrets.token_hex(6))
