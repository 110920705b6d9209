"""Tokens in URLs (calendar feeds, join links) never reach the access log."""
from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from confctl.access_log import RedactingAccessLogger, redact
from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users


def test_redact_keeps_the_rest_of_the_url():
    assert redact("/api/sites/cc/calendar.ics?token=cct_abc&x=1") == "/api/sites/cc/calendar.ics?token=REDACTED&x=1"
    assert redact("/join?Token=abc") == "/join?Token=REDACTED"
    assert redact("/api/sessions?from=2026") == "/api/sessions?from=2026"


async def test_a_calendar_token_is_redacted_in_the_access_log(tmp_path, caplog):
    url = f"sqlite:///{tmp_path}/a.db"
    # the runner as `confctl serve` builds it (web.run_app passes the same access_log_class)
    runner = web.AppRunner(make_app(Settings(topology_file=demo_topology_path(), db_url=url)),
                           access_log_class=RedactingAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        token = add_users(url, [("tina", Role.TECHNICIAN, "cc-nongan")])["tina"]
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/api/sites/cc-nongan/calendar.ics",
                                    params={"token": token}) as r:
                    assert r.status == 200
    finally:
        await runner.cleanup()
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "aiohttp.access"]
    assert any("calendar.ics?token=REDACTED" in line for line in lines), lines
    assert not any(token in line for line in lines)
