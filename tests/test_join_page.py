"""Two sites join one booked session from headless Chromium with fake camera and microphone."""
from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

import pytest
from playwright.async_api import async_playwright

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology
from tests.media.peers import until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser


async def test_two_browsers_receive_each_others_video(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/join.db"
    server = await aiohttp_server(make_app(Settings(db_url=url)))
    users = UserStore(make_engine(url))
    _, token = users.add("olga", Role.ORGANIZER, None, set(demo_topology().sites))
    base = f"http://127.0.0.1:{server.port}"
    import aiohttp
    now = datetime.now(timezone(timedelta(hours=8)))
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"}, json={
            "title": "Browser drill", "host_site": "jl", "sites": ["sp"], "start": now.isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(), "profile": "sd"})
        session = await r.json()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic"])
        try:
            pages = {}
            for site in ("jl", "sp"):
                ctx = await browser.new_context(permissions=["camera", "microphone"])
                page = pages[site] = await ctx.new_page()
                resp = await page.goto(session["join_urls"][site])
                assert resp.status == 200, (session["join_urls"][site], await resp.text())
                await page.click("#camera")
            frames: dict[str, int] = {}

            async def poll() -> None:
                for site, page in pages.items():
                    frames[site] = await page.evaluate("window.confctlStats.framesDecoded")

            # framesDecoded rising at both sites: each decodes the other's camera
            deadline = datetime.now() + timedelta(seconds=40)
            first: dict[str, int] | None = None
            while True:
                await poll()
                if first is None and all(v > 0 for v in frames.values()):
                    first = dict(frames)
                if first is not None and all(frames[s] > first[s] + 20 for s in frames):
                    break
                assert datetime.now() < deadline, f"frames decoded stalled: {frames}"
                await pages["jl"].wait_for_timeout(500)
            assert "sp" in await pages["jl"].text_content("#program")
            assert "jl" in await pages["sp"].text_content("#program")
        finally:
            await browser.close()
    users.engine.dispose()


async def test_self_test_reports_media_back_from_the_node(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/echo.db"
    server = await aiohttp_server(make_app(Settings(db_url=url)))
    users = UserStore(make_engine(url))
    _, token = users.add("olga", Role.ORGANIZER, None, set(demo_topology().sites))
    base = f"http://127.0.0.1:{server.port}"
    import aiohttp
    start = datetime.now(timezone(timedelta(hours=8))) + timedelta(hours=5)
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"}, json={
            "title": "Tomorrow", "host_site": "jl", "sites": ["cc-nongan"], "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"})
        session = await r.json()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-quic"])
        try:
            page = await browser.new_page()
            await page.goto(session["join_urls"]["cc-nongan"])
            await page.click("#selftest")  # the canvas test pattern: no camera needed
            await page.wait_for_function("document.getElementById('status').textContent.startsWith('self-test passed')",
                                         timeout=30000)
        finally:
            await browser.close()
    users.engine.dispose()
