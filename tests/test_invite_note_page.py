"""The booking and session pages say in one line whether invites are mailed (real Chromium)."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from confctl.invite_mail import SmtpConfig
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.browser import launch, sign_in
from tests.conftest import add_users, tomorrow_at
from tests.test_invite_mail import relay  # noqa: F401  (the in-process SMTP server)

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))


async def test_the_pages_say_whether_invites_are_mailed(aiohttp_server, tmp_path, relay):  # noqa: F811
    plain = f"sqlite:///{tmp_path}/plain.db"
    mailing = f"sqlite:///{tmp_path}/mailing.db"
    without = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=plain)))
    with_smtp = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=mailing,
                                                       smtp=SmtpConfig("127.0.0.1", relay.port, "plain", "c@jl.example"))))
    olga = add_users(plain, [("olga", Role.ORGANIZER, None)])["olga"]
    olga_mailing = add_users(mailing, [("olga", Role.ORGANIZER, None)])["olga"]
    t = tomorrow_at(9)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await launch(pw)
        page = await browser.new_page()
        base = f"http://127.0.0.1:{without.port}"
        await sign_in(page, base, olga, "/book")
        await page.select_option("#host", "jl")
        await page.fill("#start", t.strftime("%Y-%m-%dT%H:%M"))
        await page.dispatch_event("#start", "change")
        await page.check("#site-cc")
        await expect(page.locator("#verdict")).to_contain_text("Fits")
        await page.click("#book")
        await expect(page.locator("#invite_mail")).to_contain_text("Invites are not mailed: this server runs without --smtp")
        await page.screenshot(path=str(ARTIFACTS / "booking-invites-not-mailed.png"), full_page=True)

        base = f"http://127.0.0.1:{with_smtp.port}"
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {olga_mailing}"}, json={
                "title": "Flood briefing", "host_site": "jl", "sites": ["cc"], "start": t.isoformat(),
                "end": (t + timedelta(hours=1)).isoformat(), "profile": "sd"})
            sid = (await r.json())["id"]
        page = await browser.new_page()
        await sign_in(page, base, olga_mailing, f"/sessions/{sid}")
        await expect(page.locator("#invite_mail")).to_contain_text("Invites are mailed to each site's contact")
        await browser.close()
    await relay.wait_for(2)  # the two sites' invites arrived (olga has no address)
