"""A media node: the rooms of the sessions it serves. Runs inside `confctl serve`."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from media.aiortc_hooks import install_fast_clock, raise_bitrate_caps
from media.room import Leg, MediaRoom
from media.supervision import TaskGroup
from rooms.ids import SessionId, SiteId

log = logging.getLogger("media.node")


class MediaNode:
    def __init__(self, ice_servers: list[Any] | None = None, recordings: Path | None = None):
        self.rooms: dict[SessionId, MediaRoom] = {}
        self.recordings = recordings
        raise_bitrate_caps()  # any encoder aiortc builds in this process (tests, harness) may reach HD rates
        install_fast_clock()
        self._ice = ice_servers or []
        self._closing = TaskGroup("media node")

    def room(self, session_id: SessionId, host: SiteId, record: bool = False) -> MediaRoom:
        room = self.rooms.get(session_id)
        if room is None:
            where = self.recordings / session_id if record and self.recordings is not None else None
            room = self.rooms[session_id] = MediaRoom(session_id, host, self._ice, where)
        return room

    def echo_room(self, session_id: SessionId, site: SiteId) -> MediaRoom:
        """A self-test room for one site: its media goes to the node and straight back."""
        key = SessionId(f"{session_id}/echo/{site}")
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = MediaRoom(key, site, self._ice, echo=True)
        return room

    async def release(self, session_id: SessionId) -> None:
        """Close a room nobody is in any more."""
        room = self.rooms.get(session_id)
        if room is not None and not room.legs:
            del self.rooms[session_id]
            await room.close()

    def drop_leg(self, session_id: SessionId, leg: Leg) -> asyncio.Task[None]:
        """Close a leg whose signalling connection ended.

        The node owns the work, so it completes even when the connection's
        handler is cancelled (aiohttp cancels it when the client disconnects).
        """
        async def drop() -> None:
            room = self.rooms.get(session_id)
            if room is not None:
                await room.drop(leg)
                await self.release(session_id)
        return self._closing.spawn(drop(), f"closing leg {leg.site} of {session_id}")

    async def close(self) -> None:
        await self._closing.close()
        for sid in list(self.rooms):
            await self.rooms.pop(sid).close()

    async def live_figures(self, now: float) -> list[dict[str, Any]]:
        return [{"session": sid, "host": room.host, "legs": await room.live_figures(now)}
                for sid, room in list(self.rooms.items())]
