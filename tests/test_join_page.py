"""The technicians' join page in headless Chromium (Debian's), driven by Playwright."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from playwright.async_api import async_playwright

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from rooms.store.users import Role
from tests.browser import launch
from tests.conftest import add_users

pytestmark = pytest.mark.browser


@pytest.fixture
async def booked(aiohttp_server, tmp_path):
    """A running control plane and a function that books a session through its API."""
    url = f"sqlite:///{tmp_path}/join.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    token = add_users(url, [("olga", Role.ORGANIZER, None)])["olga"]
    base = f"http://127.0.0.1:{server.port}"

    async def book(sites: list[str], start: datetime) -> dict:
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"}, json={
                "title": "Drill", "host_site": sites[0], "sites": sites[1:], "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"})
            assert r.status == 201
            return await r.json()
    yield book


def now() -> datetime:
    return datetime.now(timezone(timedelta(hours=8)))


async def test_two_browsers_receive_each_others_video(booked):
    session = await booked(["jl", "sp"], now())
    async with async_playwright() as pw:
        browser = await launch(pw, fake_devices=True)
        try:
            pages = {}
            for site in ("jl", "sp"):
                ctx = await browser.new_context(permissions=["camera", "microphone"])
                page = pages[site] = await ctx.new_page()
                resp = await page.goto(session["join_urls"][site])
                assert resp.status == 200
                await page.click("#camera")
            # framesDecoded rising at both sites: each decodes the other's camera
            deadline = datetime.now() + timedelta(seconds=40)
            first: dict[str, int] | None = None
            while True:
                frames = {s: await p.evaluate("window.confctlStats.framesDecoded") for s, p in pages.items()}
                if first is None and all(v > 0 for v in frames.values()):
                    first = dict(frames)
                if first is not None and all(frames[s] > first[s] + 20 for s in frames):
                    break
                if datetime.now() > deadline:
                    status = {s: await p.text_content("#status") for s, p in pages.items()}
                    raise AssertionError(f"frames decoded stalled: {frames}, page status: {status}")
                await pages["jl"].wait_for_timeout(500)  # polling a condition, with the deadline above
            assert "sp" in await pages["jl"].text_content("#program")
            assert "jl" in await pages["sp"].text_content("#program")
        finally:
            await browser.close()


async def test_self_test_reports_media_back_from_the_node(booked):
    session = await booked(["jl", "cc-nongan"], now() + timedelta(hours=5))  # hours before the meeting
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page()
            await page.goto(session["join_urls"]["cc-nongan"])
            await page.click("#selftest")  # the canvas test pattern: no camera needed
            await page.wait_for_function("document.getElementById('status').textContent.startsWith('self-test passed')",
                                         timeout=30000)
        finally:
            await browser.close()
