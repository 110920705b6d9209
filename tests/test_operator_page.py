"""The operators' dashboard in Debian's Chromium: a live session of real aiortc peers, its legs by site
name, the links coloured by live load, an impairment seen within 10 s, alarms acknowledged.
Screenshots at 1920×1080 (the wall screen) and 1280×800 (a laptop) go to var/test-artifacts/."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology, demo_topology_path
from tests.browser import launch, sign_in
from tests.conftest import add_users
from tests.media.lossy_path import LossyPath
from tests.media.test_signalling import TZ, book
from tests.test_monitoring import join_talking

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))


async def test_the_dashboard_shows_live_legs_by_name_coloured_links_and_reacts_to_an_impairment(
        aiohttp_server, aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/dash.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    quality_sample_s=1.0)))
    c = await aiohttp_client(server)
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    c.h = {"Authorization": f"Bearer {tokens['olga']}"}
    base = f"http://127.0.0.1:{server.port}"
    names = {s.id: s.name for s in demo_topology().sites.values()}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s = await book(c, ["jl", "cc-nongan"], datetime.now(TZ))
    peers, sockets = {}, []
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            await sign_in(page, base, tokens["opal"], "/operator")
            await join_talking(c, s, ("jl", "cc-nongan"), peers, sockets)
            session = page.locator(f"#session-{s['id']}")
            await expect(session).to_contain_text("Live drill", timeout=20_000)
            nongan = session.locator('tr[data-site="cc-nongan"]')
            await expect(nongan).to_contain_text(names["cc-nongan"], timeout=20_000)  # a name, not an id
            await expect(session.locator('tr[data-site="jl"]')).to_contain_text(names["jl"])
            await expect(nongan).to_have_attribute("data-grade", "good", timeout=20_000)
            # Nong'an's county link carries the session: coloured by its live load, not idle
            down = page.locator('#site-cc-nongan [data-dir="down"]')
            await expect(down).to_have_attribute("data-band", "low", timeout=20_000)
            await expect(page.locator('#site-cc-yushu [data-dir="down"]')).to_have_attribute("data-band", "idle")
            await page.screenshot(path=str(ARTIFACTS / "operator-1920x1080.png"), full_page=True)

            path = LossyPath(peers["cc-nongan"].pc)
            path.impair(loss=0.2)
            await expect(nongan).to_have_attribute("data-grade", "poor", timeout=10_000)
            alarm = page.locator('#alarms li[data-kind="leg_loss"]')
            await expect(alarm).to_contain_text(f"{names['cc-nongan']}:", timeout=10_000)
            await nongan.click()  # the leg's last minutes
            await expect(page.locator("#chart-title")).to_contain_text(names["cc-nongan"])
            await page.set_viewport_size({"width": 1280, "height": 800})
            await page.screenshot(path=str(ARTIFACTS / "operator-1280x800.png"), full_page=True)
            await alarm.locator("button.ack").click()
            await expect(alarm).to_contain_text("ack: opal")
            assert not await page.locator("button.end").count()  # operators read; only admins end legs

            path.clear()
            await expect(nongan).to_have_attribute("data-grade", "good", timeout=30_000)
            await expect(page.locator('#alarms li[data-kind="leg_loss"]')).to_have_count(0, timeout=30_000)
        finally:
            await browser.close()
            for ws in sockets:
                await ws.close()
            for p in peers.values():
                await p.close()
    assert (ARTIFACTS / "operator-1920x1080.png").stat().st_size > 10_000
