"""Tokens in URLs (calendar feeds, join links) never reach the access log."""
from __future__ import annotations

import asyncio
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


async def _serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """An app behind the access logger `confctl serve` and `confctl media-node` give web.run_app."""
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, runner.addresses[0][1]


def _access(caplog, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "aiohttp.access" and r.levelno == level and text in r.getMessage()]


async def test_node_heartbeats_figures_and_probes_are_logged_at_debug_not_info(tmp_path, caplog):
    """Of 3,839 lines `make run` logged in 13 minutes, 2,686 were the control plane reading /figures."""
    from media.node_server import make_node_app
    from tests.media.node_processes import free_port
    url = f"sqlite:///{tmp_path}/a.db"
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    control, port = await _serve(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    tokens = add_users(url, [("node-cc", Role.NODE, None), ("opal", Role.OPERATOR, None)])
    node_port = free_port()
    node, _ = await _serve(make_node_app(f"http://127.0.0.1:{port}", tokens["node-cc"], "node-cc",
                                         f"http://127.0.0.1:{node_port}", tmp_path / "rec", heartbeat_s=0.2), node_port)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {tokens['opal']}"}) as http:
            deadline = asyncio.get_running_loop().time() + 30
            while len(_access(caplog, logging.DEBUG, '"POST /api/media-nodes"')) < 3:  # three beats answered
                assert asyncio.get_running_loop().time() < deadline, "the node never beat"
                await asyncio.sleep(0.1)
            async with http.get(f"http://127.0.0.1:{port}/api/live") as r:  # reads every live node's /figures
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{node_port}/health") as r:  # the node watch's direct probe
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{port}/api/health") as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{port}/api/media-nodes") as r:  # a person's read: INFO
                assert r.status == 200
    finally:
        await node.cleanup()
        await control.cleanup()
    for routine in ('"POST /api/media-nodes"', '"GET /figures"', '"GET /health"', '"GET /api/health"'):
        assert _access(caplog, logging.DEBUG, routine), routine  # answered, and logged for whoever asks DEBUG
        assert not _access(caplog, logging.INFO, routine.rstrip('"')), routine
    assert _access(caplog, logging.INFO, '"GET /api/media-nodes HTTP/1.1" 200')


def test_a_refused_heartbeat_is_still_logged_at_info():
    from confctl.access_log import routine
    assert routine("GET", "/figures", 200) and routine("POST", "/api/media-nodes", 200)
    assert not routine("GET", "/figures", 403) and not routine("POST", "/api/media-nodes", 401)
    assert not routine("GET", "/api/sessions", 200)


async def test_ice_connectivity_checks_go_to_debug(caplog):
    """Two aioice agents connecting over loopback, as every leg does, with the logging `confctl serve` sets up."""
    import aioice

    from confctl import log_setup
    log_setup.configure()
    ice = logging.getLogger("aioice.ice")

    async def connect() -> None:
        a, b = aioice.Connection(ice_controlling=True), aioice.Connection(ice_controlling=False)
        try:
            await asyncio.gather(a.gather_candidates(), b.gather_candidates())
            for x, y in ((a, b), (b, a)):
                for c in y.local_candidates:
                    await x.add_remote_candidate(c)
                await x.add_remote_candidate(None)
                x.remote_username, x.remote_password = y.local_username, y.local_password
            await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 20)
        finally:
            await asyncio.gather(a.close(), b.close())
    try:
        with caplog.at_level(logging.INFO):
            await connect()
        at_info = [r for r in caplog.records if r.name == "aioice.ice"]
        assert not [r for r in at_info if " Check " in r.getMessage()], [r.getMessage() for r in at_info]
        assert any("ICE completed" in r.getMessage() for r in at_info)  # what is not a check still shows
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            await connect()
        checks = [r for r in caplog.records if r.name == "aioice.ice" and " Check " in r.getMessage()]
        assert checks and all(r.levelno == logging.DEBUG for r in checks)
    finally:
        for f in [f for f in ice.filters if isinstance(f, log_setup.DemoteIceChecks)]:
            ice.removeFilter(f)


async def test_the_favicon_is_served_so_no_page_logs_a_404(tmp_path, caplog):
    import io

    from PIL import Image
    url = f"sqlite:///{tmp_path}/a.db"
    runner, port = await _serve(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as http:  # not signed in: browsers ask for it on the sign-in page
                async with http.get(f"http://127.0.0.1:{port}/favicon.ico") as r:
                    assert r.status == 200 and r.content_type == "image/x-icon"
                    icon = Image.open(io.BytesIO(await r.read()))
    finally:
        await runner.cleanup()
    assert icon.format == "ICO" and (32, 32) in icon.info["sizes"]
    assert _access(caplog, logging.INFO, '"GET /favicon.ico HTTP/1.1" 200')
