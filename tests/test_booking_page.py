"""The organizers' booking page in real Chromium (Debian's), driven by Playwright."""
from __future__ import annotations

import asyncio
import os
import re
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology, demo_topology_path
from rooms.store.users import Role
from tests.browser import launch, sign_in
from tests.conftest import add_users, tomorrow_at

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))


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


async def test_book_refused_in_words_then_an_alternative_books_it_then_calendar_edit_and_cancel(site, page):
    server, token = site
    base = f"http://127.0.0.1:{server.port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t = tomorrow_at(10)
    client_headers = {"Authorization": f"Bearer {token}"}
    import aiohttp
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{base}/api/sessions", headers=client_headers, json={
            # in the province's emergency hall and Nong'an's emergency office, so that Nong'an's link binds, not a room
            "title": "Earlier meeting", "host_site": "jl/emergency", "sites": ["cc-nongan/emergency", "sp"], "start": t.isoformat(),
            "end": (t + timedelta(hours=1)).isoformat(), "profile": "hd720"})
        assert r.status == 201

    await sign_in(page, base, token, "/book")
    await expect(page.locator("#whoami")).to_contain_text("olga (organizer)")
    await page.select_option("#host", "jl")
    await page.fill("#start", t.strftime("%Y-%m-%dT%H:%M"))
    await page.dispatch_event("#start", "change")
    # A prefecture's box is the prefecture alone; "+ all below" brings its counties.
    await page.check("#site-sp")
    await expect(page.locator("#site-sp ~ ul input").first).not_to_be_checked()
    await page.uncheck("#site-sp")
    await page.check("#site-cc")
    await page.click('button[data-subtree="cc"]')
    for county in ("cc-nongan", "cc-yushu", "cc-dehui", "cc-jiutai"):
        await expect(page.locator(f"#site-{county}")).to_be_checked()
    await page.uncheck("#site-cc-mobile")  # its 2 Mbit/s satellite link cannot take video anyway
    await page.select_option("#profile", "hd720")

    sentence = page.locator("#sentences li").first
    await expect(sentence).to_contain_text("Nong'an County's 10 Mbit/s link can take 7.5 Mbit/s down")
    await expect(sentence).to_contain_text("this session needs 4.3 Mbit/s down — SD fits")
    await expect(sentence.locator(".inway")).to_contain_text("Earlier meeting")  # the session in the way, by name
    await expect(page.locator("#violations tbody tr")).to_contain_text("Nong'an County – Changchun")
    assert "admission_refused" not in await page.locator("#decision").inner_text()  # no raw error code
    assert await page.locator("#book").is_disabled()
    await page.screenshot(path=str(ARTIFACTS / "booking-refused.png"), full_page=True)

    alt = page.locator("button.alternative", has_text="use sd")
    await alt.click()
    await expect(page.locator("#profile")).to_have_value("sd")
    await expect(page.locator("#verdict")).to_contain_text("Fits: 6 sites")
    nongan_down = page.locator('#loads tbody tr[data-link=cc-nongan][data-dir=down]')
    await expect(nongan_down).to_contain_text("1760")
    await expect(nongan_down).to_contain_text("81 %")  # 4280 booked by the earlier meeting + 1760, of 7500
    await page.click("#book")
    await expect(page.locator("#booked")).to_contain_text("Booked “Coordination meeting”")
    await expect(page.locator("#dial_in")).to_have_text(re.compile(r"^\d{6}$"))
    await expect(page.locator("#join_links tr[data-site]")).to_have_count(6)
    await expect(page.locator("#verdict")).to_have_text("Booked.")  # not a re-check saying it does not fit
    await page.screenshot(path=str(ARTIFACTS / "booking-booked.png"), full_page=True)

    async with aiohttp.ClientSession() as http:
        listed = await (await http.get(f"{base}/api/sessions?site=cc-yushu", headers=client_headers)).json()
    (booked,) = listed["sessions"]
    assert booked["profile"] == "sd" and {s["site"] for s in booked["sites"]} >= {"jl", "cc", "cc-nongan", "cc-jiutai"}

    # the week view shows it; it opens its own page; an edit is admitted again; then it is cancelled
    await page.goto(f"{base}/sessions?view=week&date={t.date().isoformat()}")
    event = page.locator(f'.day-col[data-day="{t.date().isoformat()}"] a[data-session="{booked["id"]}"]')
    await expect(event).to_contain_text("Coordination meeting")
    await page.screenshot(path=str(ARTIFACTS / "calendar-week.png"), full_page=True)
    await event.click()
    await expect(page.locator("#title")).to_have_text("Coordination meeting")
    await expect(page.locator("#dial_in")).to_have_text(booked["dial_in"])
    await expect(page.locator("#join_links tr[data-site]")).to_have_count(6)
    later = t + timedelta(hours=3)
    await page.fill("#e_start", later.strftime("%Y-%m-%dT%H:%M"))
    await page.click("#save")
    await expect(page.locator("#edit_ok")).to_be_visible()
    await expect(page.locator("#facts")).to_contain_text(later.strftime("%Y-%m-%d %H:%M"))
    await page.select_option("#e_profile", "hd1080")
    await page.click("#save")
    await expect(page.locator("#edit_refusal")).to_contain_text("link can take 7.5 Mbit/s")
    await page.screenshot(path=str(ARTIFACTS / "session-page.png"), full_page=True)
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.click("#cancel")
    await expect(page.locator("#cancelled")).to_be_visible()
    async with aiohttp.ClientSession() as http:
        gone = await (await http.get(f"{base}/api/sessions/{booked['id']}", headers=client_headers)).json()
    assert gone["status"] == "cancelled" and gone["profile"] == "sd" and gone["start"] == later.isoformat()


async def test_a_mobile_platform_books_for_video_with_the_speaker_only_and_the_chosen_layouts_are_stored(site, page):
    """SD with Changchun's mobile platform: its 2 Mbit/s satellite link cannot take the two-video program,
    so it was refused with only audio offered. Automatic for thin links is on once a mobile site is chosen;
    off by hand, the refusal offers the speaker only there, and the layouts set on the page are booked."""
    server, token = site
    base = f"http://127.0.0.1:{server.port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t = tomorrow_at(14)
    await sign_in(page, base, token, "/book")
    await page.select_option("#host", "jl")
    await page.fill("#start", t.strftime("%Y-%m-%dT%H:%M"))
    await page.dispatch_event("#start", "change")
    await page.select_option("#profile", "sd")
    await page.check("#site-cc")
    await expect(page.locator("#auto_layouts")).not_to_be_checked()
    await expect(page.locator('select[data-layout="cc"]')).to_be_visible()  # beside a chosen site only
    await expect(page.locator('select[data-layout="cc-mobile"]')).to_be_hidden()
    await page.check("#site-cc-mobile")
    await expect(page.locator("#auto_layouts")).to_be_checked()  # on by default for a mobile platform
    await expect(page.locator("#verdict")).to_contain_text("Fits: 3 sites")
    await expect(page.locator("#layouts_note")).to_have_text(
        "A smaller program: Changchun Mobile Emergency Platform receives the speaker only.")

    await page.uncheck("#auto_layouts")  # as before: refused, and now the speaker only is offered
    await expect(page.locator("#sentences li").first).to_contain_text("Changchun Mobile Emergency Platform's 2 Mbit/s link")
    thin = page.locator("#thin_alternative")
    await expect(thin).to_have_text("give Changchun Mobile Emergency Platform the speaker only instead")
    await page.screenshot(path=str(ARTIFACTS / "booking-thin-link-refused.png"), full_page=True)
    await thin.click()
    await expect(page.locator('select[data-layout="cc-mobile"]')).to_have_value("speaker")
    await expect(page.locator("#verdict")).to_contain_text("Fits: 3 sites")
    await page.select_option('select[data-layout="cc"]', "audio")  # and one chosen by hand
    await expect(page.locator("#layouts_note")).to_contain_text("Changchun receives audio only")
    await page.click("#book")
    await expect(page.locator("#booked")).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "booking-thin-link-booked.png"), full_page=True)

    import aiohttp
    async with aiohttp.ClientSession() as http:
        r = await http.get(f"{base}/api/sessions?site=cc-mobile", headers={"Authorization": f"Bearer {token}"})
        (booked,) = (await r.json())["sessions"]
    assert booked["profile"] == "sd" and {s["site"] for s in booked["sites"]} == {"jl", "cc", "cc-mobile"}
    assert booked["media_plan"]["layouts"] == {"cc-mobile": "speaker", "cc": "audio"}
    await page.click("#session_link")
    await expect(page.locator("#facts")).to_contain_text("Changchun Mobile Emergency Platform / unit (the speaker only)")


async def test_the_site_search_filters_the_tree_keeping_parents_and_times_are_the_provinces(site):
    """78 sites in one tree: typing a name (English/pinyin or Chinese) or an id shows those sites with the
    prefecture and province above them; what was chosen stays chosen. The browser runs in London, yet the
    start and the booked time read in the province's time, labelled once."""
    server, token = site
    base = f"http://127.0.0.1:{server.port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    total = len(demo_topology().sites)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            context = await browser.new_context(timezone_id="Europe/London", locale="en-US")
            page = await context.new_page()
            await sign_in(page, base, token, "/book")
            shown = page.locator("#tree li[data-node]:visible")
            await expect(shown).to_have_count(total)
            await page.check("#site-sp")  # chosen before searching

            await page.fill("#site_search", "nongan")  # "Nong'an County", as typed without the apostrophe
            await expect(shown).to_have_count(3)
            for visible in ("jl", "cc", "cc-nongan"):
                await expect(page.locator(f"#site-{visible}")).to_be_visible()
            for hidden in ("cc-yushu", "sp", "cc-mobile", "dept-finance"):
                await expect(page.locator(f"#site-{hidden}")).to_be_hidden()
            await expect(page.locator("#tree li.found")).to_have_count(1)
            await expect(page.locator("#site_matches")).to_have_text(f"1 of {total} sites found")
            await page.screenshot(path=str(ARTIFACTS / "booking-site-search.png"), full_page=True)
            await page.check("#site-cc-nongan")

            await page.fill("#site_search", "农安")  # its Chinese name
            await expect(page.locator('#tree li[data-node="cc-nongan"]')).to_be_visible()
            await expect(shown).to_have_count(3)
            await page.fill("#site_search", "CC-MOBILE")  # an id, in any case
            await expect(page.locator("#tree li.found")).to_have_attribute("data-node", "cc-mobile")
            await page.fill("#site_search", "changchun")  # the prefecture and its mobile platform, by name
            await expect(page.locator("#tree li.found")).to_have_count(2)
            await page.fill("#site_search", "no such place")
            await expect(shown).to_have_count(0)
            await expect(page.locator("#site_matches")).to_contain_text("No site matches")
            await page.press("#site_search", "Escape")  # back to the whole tree, the choices kept
            await expect(shown).to_have_count(total)
            await expect(page.locator("#site-sp")).to_be_checked()
            await expect(page.locator("#site-cc-nongan")).to_be_checked()

            await expect(page.locator("#zone")).to_have_text("times in China Standard Time, UTC+08:00")
            t = tomorrow_at(10)
            await expect(page.locator("#start")).to_have_value(t.strftime("%Y-%m-%dT%H:%M"))  # tomorrow 10:00 there
            await expect(page.locator("#verdict")).to_contain_text("Fits")
            await page.click("#book")
            await expect(page.locator("#booked")).to_contain_text(f"{t:%Y-%m-%d} 10:00–11:00")
            assert (await page.locator("body").inner_text()).count("UTC") == 1
            async with aiohttp.ClientSession() as http:
                r = await http.get(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"})
                (booked,) = (await r.json())["sessions"]
            assert booked["start"] == t.isoformat()
        finally:
            await browser.close()
