"""Recordings of a session: listed, downloaded, deleted by its organizer, operators and admins."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from aiohttp import web

from confctl.api.route import WRITERS, Route
from confctl.api.session_access import session_for
from confctl.auth import require
from confctl.errors import ApiError
from confctl.keys import COMPOSITES, SETTINGS
from media.composite import render, tiles_in
from media.recording import describe
from rooms.store.users import Role, User

NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}\.webm")  # our own names; the bound keeps OSError away


async def _folder(request: web.Request) -> tuple[User, Path]:
    user = require(request)
    session = await session_for(request, user)
    if user.role is Role.ORGANIZER and session["organizer_id"] != user.id:
        raise ApiError(403, "forbidden", "only the session's organizer, operators and admins reach its recordings")
    return user, request.app[SETTINGS].recordings_dir / session["id"]


def _file(folder: Path, name: str) -> Path:
    if not NAME.fullmatch(name) or not (folder / name).is_file():
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


class CompositeJobs:
    """Grid renders in progress, one per session; owned by the app, which awaits them on shutdown."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, object]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False

    def start(self, session_id: str, folder: Path) -> dict[str, object]:
        job: dict[str, object] = {"state": "running", "progress": 0.0, "file": None, "error": None}
        self.jobs[session_id] = job
        out = folder / f"composite-grid-{int(time.time() * 1000)}.webm"

        def progress(fraction: float) -> None:
            if self.stopping:
                raise RuntimeError("server shutting down")
            job["progress"] = round(fraction, 3)

        async def run() -> None:
            try:
                await asyncio.to_thread(render, tiles_in(folder), out, progress)
                job.update(state="done", file=out.name)
            except Exception as exc:  # reported through the status route
                out.unlink(missing_ok=True)
                job.update(state="failed", error=str(exc))

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    async def close(self) -> None:
        self.stopping = True
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def start_composite(request: web.Request) -> web.Response:
    _, folder = await _folder(request)
    jobs = request.app[COMPOSITES]
    sid = request.match_info["id"]
    if jobs.jobs.get(sid, {}).get("state") == "running":
        raise ApiError(409, "already_running", "a grid video for this session is being rendered")
    if not folder.is_dir() or not tiles_in(folder):
        raise ApiError(404, "not_found", "this session has no video recordings to compose")
    return web.json_response(jobs.start(sid, folder), status=202)


async def composite_status(request: web.Request) -> web.Response:
    await _folder(request)
    job = request.app[COMPOSITES].jobs.get(request.match_info["id"])
    return web.json_response(job or {"state": "none"})


routes = [
    Route("POST", "/api/sessions/{id}/recordings/composite", start_composite,
          "Render a grid video of every site's recording (after the session); poll its status",
          WRITERS, responses={202: "{state, progress}", 404: "no video recordings"}),
    Route("GET", "/api/sessions/{id}/recordings/composite", composite_status, "Progress of the grid render",
          ("organizer", "operator", "admin"), responses={200: "{state: none|running|done|failed, progress, file}"}),
    Route("GET", "/api/sessions/{id}/recordings", list_recordings, "A session's recordings (one file per site and track)",
          ("organizer", "operator", "admin")),
    Route("GET", "/api/sessions/{id}/recordings/{name}", download, "Download one recording (WebM)",
          ("organizer", "operator", "admin"), responses={200: "video/webm"}, content_type="video/webm"),
    Route("DELETE", "/api/sessions/{id}/recordings/{name}", delete, "Delete one recording",
          WRITERS, responses={200: "deleted", 404: "no such recording"}),
]
