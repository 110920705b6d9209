"""A booked session's dry run, from the API (the booking page's button): `confctl dryrun` as an owned job.

One at a time on this machine: a dry run builds network namespaces and loads both cores for a
minute. The job runs `confctl dryrun SESSION --json` as a child process (the database URL passes
through its environment, never its command line), and the status route returns its report.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from confctl.api.route import WRITERS, Route
from confctl.api.session_access import may_edit, session_for
from confctl.auth import require
from confctl.errors import ApiError
from confctl.keys import SETTINGS

CONFCTL = str(Path(sys.executable).parent / "confctl")
DRY_RUN_S = 60


class DryRuns:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.running: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None

    def start(self, session_id: str, db_url: str, seconds: float) -> dict[str, Any]:
        job: dict[str, Any] = {"state": "running", "seconds": seconds, "result": None, "error": None}
        self.jobs[session_id] = job
        self.running = session_id

        async def run() -> None:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    CONFCTL, "dryrun", session_id, "--json", "--seconds", str(seconds),
                    env={**os.environ, "CONFCTL_DB": db_url},
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                out, err = await self._proc.communicate()
                if self._proc.returncode in (0, 1) and out.strip():
                    job.update(state="done", result=json.loads(out))
                else:
                    job.update(state="failed", error=err.decode(errors="replace").strip()[-500:] or "no report")
            except (OSError, ValueError) as exc:
                job.update(state="failed", error=repr(exc))
            finally:
                self.running = None

        self._task = asyncio.create_task(run())
        return job

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()  # it tears its emulated network down on SIGTERM
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


DRY_RUNS = web.AppKey("dry_runs", DryRuns)


async def start_dry_run(request: web.Request) -> web.Response:
    user = require(request)
    session = await session_for(request, user)
    if not may_edit(user, session):
        raise ApiError(403, "forbidden", "only the session's organizer or an admin may rehearse it")
    if session["status"] != "booked":
        raise ApiError(409, "session_cancelled", f"session {session['id']} is {session['status']}")
    runs = request.app[DRY_RUNS]
    if runs.running is not None:
        raise ApiError(409, "dry_run_busy", f"a dry run of {runs.running} is running; one at a time on this machine",
                       retry_after_s=DRY_RUN_S)
    try:
        seconds = float(request.query.get("seconds", DRY_RUN_S))
    except ValueError:
        seconds = -1
    if not 5 <= seconds <= 600:
        raise ApiError(400, "invalid_query", "seconds: how long the meeting is measured, 5 to 600 (default 60)")
    job = runs.start(session["id"], request.app[SETTINGS].db_url, seconds)
    return web.json_response(job, status=202)


async def dry_run_status(request: web.Request) -> web.Response:
    user = require(request)
    session = await session_for(request, user)
    job = request.app[DRY_RUNS].jobs.get(session["id"])
    if job is None:
        raise ApiError(404, "not_found", f"no dry run of {session['id']} yet: POST to start one")
    return web.json_response(job)


routes = [
    Route("POST", "/api/sessions/{id}/dryrun", start_dry_run, "Rehearse the session over the emulated WAN for a "
          "minute, with every other session at that time as background load", WRITERS,
          responses={202: "{state: running}", 409: "another dry run is running, or the session is cancelled"},
          query=(("seconds", "how long the meeting is measured, 5 to 600 (default 60)"),)),
    Route("GET", "/api/sessions/{id}/dryrun", dry_run_status, "The dry run's state and, when done, its report "
          "(pass or fail per link and per site)", responses={404: "no dry run started"}),
]
