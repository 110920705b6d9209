"""The organizers' booking page in real Chromium (Debian's), driven by Playwright."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from rooms.store.users import Role
from tests.browser import launch, sign_in
from tests.conftest import add_users, tomorrow_at

pytestmark = pytest.mark.browser


@pytest.fixture
async def site(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/page.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    yield server, add_users(url, [("olga", Role.ORGANIZER, None)])["olga"]


@pytest.fixture
async def page():
    async with async_playwright() as pw:
        browser = await launch(pw)
        yield await browser.new_page()
        await browser.close()


async def test_refusal_shows_the_link_and_an_alternative_that_then_books(site, page):
    server, token = site
    base = f"http://127.0.0.1:{server.port}"
    t = tomorrow_at(10)
    client_headers = {"Authorization": f"Bearer {token}"}
    import aiohttp
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{base}/api/sessions", headers=client_headers, json={
            "title": "Earlier meeting", "host_site": "jl", "sites": ["cc-nongan", "sp"], "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat(), "profile": "hd720"})
        assert r.status == 201

    await sign_in(page, base, token, "/book")
    await expect(page.locator("#who")).to_contain_text("olga (organizer)")
    await page.select_option("#host", "jl")
    await page.fill("#start", t.strftime("%Y-%m-%dT%H:%M"))
    await page.dispatch_event("#start", "change")
    # One click on Changchun takes its counties with it.
    await page.check("#site-cc")
    for county in ("cc-nongan", "cc-yushu", "cc-dehui", "cc-jiutai"):
        await expect(page.locator(f"#site-{county}")).to_be_checked()
    await page.uncheck("#site-cc-mobile")  # its 2 Mbit/s satellite link cannot take video anyway
    await page.select_option("#profile", "hd720")

    await expect(page.locator("#verdict")).to_have_text("Does not fit: 1 constraint(s) violated")
    await expect(page.locator("#violations tbody tr")).to_contain_text("cc → cc-nongan")
    await expect(page.locator("#violations tbody tr")).to_contain_text("4280")
    assert await page.locator("#book").is_disabled()

    alt = page.locator("button.alternative", has_text="use sd")
    await alt.click()
    await expect(page.locator("#profile")).to_have_value("sd")
    await expect(page.locator("#verdict")).to_contain_text("Fits: 6 sites")
    await expect(page.locator("#loads tbody tr[data-link=cc-nongan]")).to_contain_text("1760")
    await page.click("#book")
    await expect(page.locator("#result")).to_contain_text("Booked ses_")

    async with aiohttp.ClientSession() as http:
        listed = await (await http.get(f"{base}/api/sessions?site=cc-yushu", headers=client_headers)).json()
    (booked,) = listed["sessions"]
    assert booked["profile"] == "sd" and {s["site"] for s in booked["sites"]} >= {"jl", "cc", "cc-nongan", "cc-jiutai"}
