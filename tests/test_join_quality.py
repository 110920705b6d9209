"""The join page says what it sends against what the profile asks, and when below, why in words
(confctl/pages/join_quality.js): in Debian's Chromium with its fake camera, told how fast to run."""
from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.browser import CHROMIUM, FLAGS
from tests.conftest import add_users

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))


@pytest.fixture
async def sd_session(aiohttp_server, tmp_path):
    """An SD session running now at Jilin and Siping (640×360 at 30 fps, up to 800 kbit/s)."""
    url = f"sqlite:///{tmp_path}/quality.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    token = add_users(url, [("olga", Role.ORGANIZER, None)])["olga"]
    start = datetime.now(timezone(timedelta(hours=8))).replace(microsecond=0)
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"http://127.0.0.1:{server.port}/api/sessions", headers={"Authorization": f"Bearer {token}"},
                            json={"title": "Drill", "host_site": "jl", "sites": ["sp"], "start": start.isoformat(),
                                  "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd"})
        assert r.status == 201
        yield await r.json()


async def _camera_page(pw, fps: int):  # type: ignore[no-untyped-def]
    """Chromium whose fake camera runs at `fps` frames a second (its default is 20)."""
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS + [
        f"--use-fake-device-for-media-stream=fps={fps}", "--use-fake-ui-for-media-stream"])
    ctx = await browser.new_context(permissions=["camera", "microphone"])
    return browser, await ctx.new_page()


async def test_a_camera_slower_than_the_profile_is_named_as_the_reason_the_picture_is_below_it(sd_session):
    async with async_playwright() as pw:
        browser, page = await _camera_page(pw, fps=10)
        try:
            await page.goto(sd_session["join_urls"]["jl"])
            await page.click("#camera")
            await expect(page.locator("#q_asked")).to_have_text("640×360 at 30 fps, up to 800 kbit/s")
            await expect(page.locator("#q_camera")).to_have_text("640×360 at 10 fps", timeout=20000)
            await expect(page.locator("#q_sent")).to_have_text(re.compile(r"^\d+×\d+ at \d+ fps, \d+ kbit/s$"),
                                                              timeout=20000)
            below = page.locator("#limitation")
            await expect(below).to_be_visible(timeout=20000)
            await expect(below).to_contain_text("Below the profile: you send ")
            await expect(below).to_contain_text("where SD asks 640×360 at 30 fps, because the camera gives only "
                                                "640×360 at 10 fps")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "join-below-profile.png"), full_page=True)
        finally:
            await browser.close()


async def test_the_camera_is_asked_for_16_9_and_the_sent_picture_is_shown(sd_session):
    async with async_playwright() as pw:
        browser, page = await _camera_page(pw, fps=30)
        try:
            await page.goto(sd_session["join_urls"]["sp"])
            await page.click("#camera")
            # Chromium's fake camera is 4:3 640×480 unless asked otherwise, as the webcam was: 16:9 is asked
            await expect(page.locator("#q_camera")).to_have_text("640×360 at 30 fps", timeout=20000)
            asked = await page.evaluate("preview.getVideoTracks()[0].getConstraints()")
            assert asked["aspectRatio"] == {"exact": 16 / 9} and (asked["width"], asked["height"]) == (640, 360), asked
            await page.wait_for_function("(window.confctlStats.sendWidth || 0) > 0", timeout=20000)
            sent = await page.text_content("#q_sent")
            width = await page.evaluate("window.confctlStats.sendWidth")
            assert sent is not None and sent.startswith(f"{width}×"), sent
        finally:
            await browser.close()


async def test_the_reason_in_words_for_each_limit_the_browser_reports(sd_session):
    """The verdict itself, with figures a busy or congested machine gives (pictureVerdict is pure)."""
    async with async_playwright() as pw:
        browser, page = await _camera_page(pw, fps=30)
        try:
            await page.goto(sd_session["join_urls"]["jl"])
            verdict = """([camera, sent, limitation]) => pictureVerdict(
                {name: "hd720", width: 1280, height: 720, fps: 30}, camera, sent, limitation)"""
            hd = {"width": 1280, "height": 720, "fps": 30}
            small = {"width": 640, "height": 360, "fps": 30}
            ok = await page.evaluate(verdict, [hd, {"width": 1280, "height": 720, "fps": 28}, "none"])
            assert ok == {"below": False, "reasons": [], "sentence": ""}
            cpu = await page.evaluate(verdict, [hd, small, "cpu"])
            assert cpu["below"] and cpu["sentence"] == (
                "Below the profile: you send 640×360 at 30 fps where HD720 asks 1280×720 at 30 fps, because this "
                "computer is too busy to encode more (CPU): close other programs.")
            net = await page.evaluate(verdict, [hd, small, "bandwidth"])
            assert net["reasons"] == ["the network cannot carry more right now (bandwidth)"]
            webcam = await page.evaluate(verdict, [{"width": 640, "height": 480, "fps": 17},
                                                   {"width": 640, "height": 480, "fps": 17}, "none"])
            assert webcam["reasons"] == ["the camera gives only 640×480 at 17 fps (4:3, not 16:9): choose another "
                                         "camera, or check its settings"]
        finally:
            await browser.close()
