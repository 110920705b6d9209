"""Recordings of a session: listed, downloaded, deleted by its organizer, operators and admins."""
from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from confctl.api.route import Route
from confctl.api.sessions import _session_for
from confctl.auth import require
from confctl.errors import ApiError
from confctl.keys import SETTINGS
from media.recording import describe
from rooms.store.users import Role, User

NAME = re.compile(r"^[A-Za-z0-9_.-]+\.webm$")


async def _folder(request: web.Request) -> tuple[User, Path]:
    user = require(request, Role.ORGANIZER, Role.OPERATOR, Role.ADMIN)
    session = await _session_for(request, user)
    if user.role is Role.ORGANIZER and session["organizer_id"] != user.id:
        raise ApiError(403, "forbidden", "only the session's organizer, operators and admins reach its recordings")
    return user, request.app[SETTINGS].recordings_dir / session["id"]


def _file(folder: Path, name: str) -> Path:
    if not NAME.match(name) or not (folder / name).is_file():
        raise ApiError(404, "not_found", f"no recording {name!r} in this session")
    return folder / name


async def list_recordings(request: web.Request) -> web.Response:
    _, folder = await _folder(request)
    files = sorted(folder.glob("*.webm")) if folder.is_dir() else []
    return web.json_response({"recordings": await asyncio.to_thread(lambda: [describe(f) for f in files])})


async def download(request: web.Request) -> web.FileResponse:
    _, folder = await _folder(request)
    path = _file(folder, request.match_info["name"])
    return web.FileResponse(path, headers={"Content-Type": "video/webm",
                                           "Content-Disposition": f'attachment; filename="{path.name}"'})


async def delete(request: web.Request) -> web.Response:
    _, folder = await _folder(request)
    path = _file(folder, request.match_info["name"])
    path.unlink()
    return web.json_response({"deleted": path.name})


routes = [
    Route("GET", "/api/sessions/{id}/recordings", list_recordings, "A session's recordings (one file per site and track)",
          ("organizer", "operator", "admin")),
    Route("GET", "/api/sessions/{id}/recordings/{name}", download, "Download one recording (WebM)",
          ("organizer", "operator", "admin"), responses={200: "video/webm"}, content_type="video/webm"),
    Route("DELETE", "/api/sessions/{id}/recordings/{name}", delete, "Delete one recording",
          ("organizer", "operator", "admin")),
]
