"""Schemathesis against the running API, from the OpenAPI document it serves: no request gets a 5xx.

Every route but DELETE (which would empty what the others need) is sent generated bodies,
queries and path values, valid and invalid, with an admin's token, on SQLite and on PostgreSQL
(which refuses NUL in text, where SQLite stores it). A fixed seed keeps the runs reproducible.
/api/sip/status answers 503 by design here (SIP is not started), and /api/operator/feed is a stream
that never ends (it takes no parameters or body), so both are left out.

Two documents: the one served, and the same with every string (path and query parameters, body
fields) required to hold a NUL, a control character, NEL or a bidi override, so that each
generated request carries one where the served document would mostly generate plain text (positive
mode: every generated value fits that document, so every string holds one).
The four runs take about 45 s together; most of what the run once spent (35 s of 55) went to the
live feed, which answered each generated request only at the request timeout.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
RUN_LIMIT_S = 300  # a hung run fails the test instead of the suite's budget
# At least one of: NUL, C0 controls (line feed included), DEL, NEL (C1), RIGHT-TO-LEFT OVERRIDE.
HOSTILE_PATTERN = "[\\x00-\\x1f\\x7f\\x85\\u202e]"


def hostile(node: Any) -> Any:
    """The schema with every free string required to contain a hostile character (enums kept)."""
    if isinstance(node, dict):
        out = {k: hostile(v) for k, v in node.items()}
        if out.get("type") == "string" and "enum" not in out and "const" not in out:
            out.pop("format", None)
            out["pattern"] = HOSTILE_PATTERN
        return out
    if isinstance(node, list):
        return [hostile(v) for v in node]
    return node


def test_the_hostile_document_asks_for_a_control_character_in_every_free_string():
    doc = {"parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
           "properties": {"title": {"type": "string", "pattern": "^[^\\x00]*$", "maxLength": 200},
                          "plan": {"type": "string", "enum": ["cascade", "central"]}}}
    out = hostile(doc)
    assert out["parameters"][0]["schema"]["pattern"] == HOSTILE_PATTERN
    assert out["properties"]["title"] == {"type": "string", "pattern": HOSTILE_PATTERN, "maxLength": 200}
    assert out["properties"]["plan"] == doc["properties"]["plan"]


@pytest.mark.parametrize("strings", ["served", "hostile"])
async def test_no_generated_request_gets_a_server_error(aiohttp_server, tmp_path, db_url, strings):
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=db_url,
                                                    recordings_dir=tmp_path / "rec")))
    token = add_users(db_url, [("ada", Role.ADMIN, None)])["ada"]
    base = f"http://127.0.0.1:{server.port}"
    if strings == "served":
        location = [f"{base}/api/openapi.json"]
        generation = ["--max-examples", "25"]
    else:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/openapi.json") as r:
                served = await r.json()
        (tmp_path / "hostile.json").write_text(json.dumps(hostile(served)))
        location = [str(tmp_path / "hostile.json"), "--url", base]
        generation = ["--max-examples", "50", "--phases", "coverage,fuzzing", "--mode", "positive"]
    proc = await asyncio.create_subprocess_exec(
        SCHEMATHESIS, "run", *location,
        "-H", f"Authorization: Bearer {token}", "--checks", "not_a_server_error", *generation,
        "--exclude-method", "DELETE", "--exclude-path", "/api/sip/status",
        "--exclude-path", "/api/operator/feed", "--seed", "7",
        "--generation-allow-x00", "true", "--request-timeout", "20",
        "--generation-database", "none", "--report-dir", str(tmp_path / "report"),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)  # the app keeps serving meanwhile
    except asyncio.TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        pytest.fail(f"schemathesis ran past {RUN_LIMIT_S} s:\n" + out.decode(errors="replace")[-4000:])
    assert proc.returncode == 0, out.decode(errors="replace")[-4000:]
