"""Each role signs in and lands on its own work, never on a page that refuses it; every page carries one
header saying who you are, with sign-out and only the pages your role may open (confctl/pages/header.js)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from confctl.page_routes import home_for
from rooms.store.engine import make_engine
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology, demo_topology_path
from tests.browser import launch
from tests.conftest import add_users

ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))
TZ = timezone(timedelta(hours=8))


def test_each_role_starts_on_its_own_work():
    none: frozenset[str] = frozenset()
    assert home_for("organizer", None, none) == "/sessions"
    assert home_for("organizer", None, frozenset({"emergency"})) == "/duty"  # the duty officer
    assert home_for("technician", "cc-nongan", none) == "/sessions?site=cc-nongan"
    assert home_for("operator", None, none) == "/operator"
    assert home_for("admin", None, frozenset({"emergency"})) == "/admin"


async def test_each_role_lands_on_its_own_page(api):
    expected = {"olga": "/sessions", "ada": "/admin", "opal": "/operator", "tina": "/sessions?site=cc-nongan"}
    for who, where in expected.items():
        r = await api.post("/api/signin", json={"token": api.tokens[who]})
        cookie = {"Cookie": r.headers["Set-Cookie"].split(";")[0]}
        home = await api.get("/", headers=cookie, allow_redirects=False)
        assert home.status == 302 and home.headers["Location"] == where, (who, home.headers.get("Location"))
        page = await api.get(where, headers=cookie)
        assert page.status == 200, (who, where)  # and that page is theirs, not a refusal
    api.session.cookie_jar.clear()  # the test client kept the last sign-in's cookie
    anonymous = await api.get("/", allow_redirects=False)
    assert anonymous.headers["Location"].startswith("/signin")
    r = await api.post("/api/signin", json={"token": api.tokens["olga"]})
    olga = {"Cookie": r.headers["Set-Cookie"].split(";")[0]}
    assert (await api.get("/admin", headers=olga, allow_redirects=False)).status == 403  # the admins' alone


# name, role, site, permissions; where they land; the header's links in order; pages refused to them
PEOPLE = {
    "organizer": ("olga", Role.ORGANIZER, None, (), "/sessions", ["Calendar", "Book a session"],
                  ["/admin", "/operator"]),
    "technician": ("tina", Role.TECHNICIAN, "cc-nongan", (), "/sessions?site=cc-nongan", ["My site's sessions"],
                   ["/admin", "/book", "/operator", "/duty"]),
    "operator": ("opal", Role.OPERATOR, None, (), "/operator", ["Calendar", "Dashboard"],
                 ["/admin", "/book", "/duty"]),
    "duty officer": ("Duty Officer Wang", Role.ORGANIZER, None, ("emergency",), "/duty",
                     ["Emergencies", "Calendar", "Book a session"], ["/admin", "/operator"]),
    "admin": ("ada", Role.ADMIN, None, (), "/admin",
              ["All pages", "Emergencies", "Calendar", "Book a session", "Dashboard", "API"], []),
}


@pytest.fixture
async def network(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/home.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    tokens = add_users(url, [(n, r, s) for n, r, s, p, *_ in PEOPLE.values() if not p])
    engine = make_engine(url)
    try:
        for name, role, site, permissions, *_ in PEOPLE.values():
            if permissions:
                tokens[name] = UserStore(engine).add(name, role, site, set(demo_topology().sites), permissions)[1]
    finally:
        engine.dispose()
    yield f"http://127.0.0.1:{server.port}", tokens


async def _book_now_at_nongan(base: str, token: str) -> dict:
    start = datetime.now(TZ).replace(microsecond=0)
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"}, json={
            "title": "Flood briefing", "host_site": "cc", "sites": ["cc-nongan"], "start": start.isoformat(),
            "end": (start + timedelta(minutes=50)).isoformat(), "profile": "sd"})
        assert r.status == 201, await r.text()
        return await r.json()


@pytest.mark.browser
@pytest.mark.parametrize("role", list(PEOPLE))
async def test_a_person_signs_in_lands_on_their_page_sees_their_header_and_does_their_main_task(network, role):
    base, tokens = network
    name, _, _, _, home, links, refused = PEOPLE[role]
    booked = await _book_now_at_nongan(base, tokens["olga"]) if role == "technician" else None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(f"{base}/")  # signed out: the sign-in page, then "/" sends them home
            await page.fill("#token", tokens[name])
            await page.click("#go")
            await page.wait_for_url(f"{base}{home}")
            await expect(page.locator("#whoami")).to_contain_text(name)
            nav = page.locator("#nav a")
            await expect(nav).to_have_text(links)
            for href in await nav.evaluate_all("links => links.map(a => a.getAttribute('href'))"):
                assert (await page.request.get(base + href)).status == 200, (role, href)  # each opens for them
            for path in refused:  # and what is not shown is not theirs
                assert (await page.request.get(base + path)).status == 403, (role, path)

            if role == "organizer":  # books a session
                await page.click("#nav a >> text=Book a session")
                await page.check("#site-cc-nongan")
                await expect(page.locator("#verdict")).to_contain_text("Fits")
                await page.click("#book")
                await expect(page.locator("#booked")).to_contain_text("Booked")
            elif role == "technician":  # today's session at their site, with its join button
                item = page.locator(f'#today_list li[data-session="{booked["id"]}"]')
                await expect(item).to_contain_text("Flood briefing")
                join = item.locator("a.join-button")
                await expect(join).to_have_text("Join now")
                assert "/join?token=" in (await join.get_attribute("href") or "")
            elif role == "operator":  # the dashboard's links, every site's
                await expect(page.locator("#tree #site-cc-nongan")).to_be_visible()
                await expect(page.locator("#tree #site-jl-vehicle")).to_be_visible()
            elif role == "duty officer":  # the presets, ready to open
                await expect(page.locator("#presets button").first).to_be_enabled()
                assert await page.locator("#presets button").count() >= 3
            else:  # the admins' page: every page, each a link that opens
                pages = page.locator("#pages li a")
                await expect(pages).to_have_text(links[1:])
            await page.screenshot(path=str(ARTIFACTS / f"home-{role.replace(' ', '-')}.png"), full_page=True)

            await page.click("#whoami button.signout")
            await page.wait_for_url(f"{base}/signin")
            assert (await page.request.get(f"{base}/api/me")).status == 401
        finally:
            await browser.close()
