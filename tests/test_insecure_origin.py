"""The join page opened over plain HTTP from another computer: no secure context, so no camera or microphone.

One machine, no network namespaces: Chromium treats every 127.0.0.0/8 address as this computer (a secure
context, measured: http://127.0.0.2 is secure too), so the page is opened by a name instead, mapped to the
server's 127.0.0.1 with --host-resolver-rules. A name other than localhost over http:// is not secure.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from playwright.async_api import async_playwright, expect

from tests.browser import CHROMIUM, FAKE_DEVICES, FLAGS
from tests.test_join_page import ARTIFACTS, NAMES, booked, now  # noqa: F401  (booked: the fixture)

pytestmark = pytest.mark.browser

HOST = "confctl-test.invalid"


async def launch(pw):  # type: ignore[no-untyped-def]
    """Chromium that reaches HOST at 127.0.0.1 (and has fake devices, for a secure page in the same test)."""
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=FLAGS + FAKE_DEVICES + [f"--host-resolver-rules=MAP {HOST} 127.0.0.1"])


def insecure(url: str) -> str:
    """The same join link, as another computer would open it: by name, over plain HTTP."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{HOST}:{parts.port}").geturl()


async def open_insecure(browser, url: str):  # type: ignore[no-untyped-def]
    """The page at the insecure origin, with its uncaught errors collected."""
    page = await (await browser.new_context()).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    resp = await page.goto(insecure(url))
    assert resp.status == 200
    assert await page.evaluate("window.isSecureContext") is False
    assert await page.evaluate("typeof navigator.mediaDevices") == "undefined"
    return page, errors


async def test_on_an_insecure_origin_the_page_says_why_there_is_no_camera_and_still_shows_the_session(booked):  # noqa: F811
    session = await booked(["jl", "cc-nongan"], now() + timedelta(hours=2))
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page, errors = await open_insecure(browser, session["join_urls"]["cc-nongan"])
            origin = await page.evaluate("location.origin")
            assert origin.startswith(f"http://{HOST}:")
            alert = page.locator("#insecure")
            await expect(alert).to_be_visible()
            assert await alert.get_attribute("role") == "alert"
            await expect(alert).to_contain_text("https://")
            await expect(alert).to_contain_text(origin)
            await expect(alert).to_contain_text("secure")
            await expect(alert).to_contain_text("test pattern")
            # the session still loads
            await expect(page.locator("#title")).to_have_text("Drill")
            await expect(page.locator("#host")).to_have_text(NAMES["jl"])
            await expect(page.locator("#me")).to_contain_text(NAMES["cc-nongan"])
            # the buttons that need the devices stay off once the session is known; the pattern is on
            await expect(page.locator("#pattern")).to_be_enabled()
            for id_ in ("check", "camera", "selftest", "cam", "mic"):
                await expect(page.locator(f"#{id_}")).to_be_disabled()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "join-insecure-origin.png"), full_page=True)
            # what a disabled control cannot be clicked into, fired directly: the device paths answer in
            # words instead of throwing on navigator.mediaDevices
            for id_ in ("check", "camera", "selftest"):
                await page.dispatch_event(f"#{id_}", "click")
                await expect(page.locator("#status")).to_contain_text("https://")
                await page.evaluate("document.getElementById('status').textContent = ''")
            for id_ in ("cam", "mic"):
                await page.dispatch_event(f"#{id_}", "change")
                await expect(page.locator("#status")).to_contain_text("https://")
            assert errors == []
        finally:
            await browser.close()


async def test_on_an_insecure_origin_a_site_joins_with_the_test_pattern_and_sees_and_hears_the_other(booked):  # noqa: F811
    """What the message promises, measured: the pattern needs no devices (canvas, oscillator, peer
    connection), so the insecure page sends it and receives the other site's camera and sound."""
    session = await booked(["jl", "sp"], now())
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            other = await (await browser.new_context(permissions=["camera", "microphone"])).new_page()
            await other.goto(session["join_urls"]["sp"])  # 127.0.0.1: a secure context, with the fake camera
            await other.click("#camera")
            page, errors = await open_insecure(browser, session["join_urls"]["jl"])
            await page.click("#pattern")
            # each decodes the other's video, and the insecure page receives sound
            await page.wait_for_function("window.confctlStats.framesDecoded > 30", timeout=30000)
            await other.wait_for_function("window.confctlStats.framesDecoded > 30", timeout=30000)
            await page.wait_for_function("""pc.getReceivers().some(r => r.track.kind === "audio" &&
                r.getSynchronizationSources().some(s => s.audioLevel > 0))""", timeout=15000)
            assert NAMES["sp"] in await page.text_content("#program")
            assert NAMES["jl"] in await other.text_content("#program")
            assert errors == []
        finally:
            await browser.close()
