"""The duty officer's page in Debian's Chromium: a preset opens an emergency now, the page shows who
joined (a real aiortc leg joins while it watches), what a routine session gave up, and ending it gives
that back. A screenshot goes to var/test-artifacts/."""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology, demo_topology_path
from tests.browser import launch, sign_in
from tests.conftest import add_users
from tests.media.test_signalling import TZ
from tests.test_monitoring import join_talking

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))


async def test_preset_to_running_to_preemption_shown_to_end(aiohttp_server, aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/duty.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    quality_sample_s=1.0)))
    c = await aiohttp_client(server)
    tokens = add_users(url, [("olga", Role.ORGANIZER, None)])
    engine = make_engine(url)
    _, duty = UserStore(engine).add("Duty Officer Wang", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    names = {s.id: s.name for s in demo_topology().sites.values()}
    start = datetime.now(TZ)
    r = await c.post("/api/sessions", headers={"Authorization": f"Bearer {tokens['olga']}"}, json={
        "title": "County budget", "host_site": "cc", "sites": ["cc-nongan", "cc-yushu"], "start": start.isoformat(),
        "end": start.replace(hour=23, minute=59).isoformat(), "profile": "hd720"})
    assert r.status == 201, await r.text()
    routine = await r.json()
    base = f"http://127.0.0.1:{server.port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    peers, sockets = {}, []
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await sign_in(page, base, duty, "/duty")
            await page.select_option("#profile", "hd720")
            await page.fill("#title", "Flood on the Yitong")
            await page.click('button[data-preset="prefecture:cc"]')
            await expect(page.locator("#confirm")).to_contain_text("“County budget”")  # asked first
            await page.click("#confirm-open")
            box = page.locator("#running .emergency")
            await expect(box).to_contain_text("Flood on the Yitong", timeout=20_000)
            nongan = box.locator('tr[data-site="cc-nongan"]')
            await expect(nongan).to_contain_text(names["cc-nongan"])
            await expect(nongan).to_contain_text("not yet")
            taken = box.locator("ul.preempted")  # Nong'an's and Yushu's links each lacked room
            await expect(taken).to_contain_text("“County budget” gave way to the speaker only on cc-nongan (down)")
            await expect(taken).to_contain_text("“County budget” gave way to the speaker only on cc-yushu (down)")
            await expect(page.locator("#open-result")).to_contain_text("1 session(s) gave way")

            running = (await (await c.get("/api/emergencies", headers={"Authorization": f"Bearer {duty}"})).json())
            (emergency,) = running["emergencies"]
            await join_talking(c, emergency, ("cc-nongan",), peers, sockets)
            await expect(nongan).to_contain_text("joined", timeout=20_000)
            await expect(box.locator(".joined-count")).to_contain_text(f"1 of {len(emergency['sites'])} sites joined")
            await page.screenshot(path=str(ARTIFACTS / "duty-running.png"), full_page=True)

            await box.locator("button.end").click()
            await expect(page.locator("#open-result")).to_contain_text("1 session(s) got back what they gave")
            await expect(page.locator("#running")).to_contain_text("No emergency is running.")
            # The routine session's own page keeps what happened to it
            await page.goto(f"{base}/sessions/{routine['id']}")
            history = page.locator("#history")
            await expect(history.locator('li[data-kind="degrade"]')).to_have_count(2)
            await expect(history.locator('li[data-kind="restore"]')).to_have_count(2)
            await expect(history).to_contain_text(f"gave way: {names['cc-nongan']} the speaker only on cc-nongan (down)")
        finally:
            await browser.close()
            for ws in sockets:
                await ws.close()
            for p in peers.values():
                await p.close()


async def test_open_asks_first_and_names_the_session_that_gives_way(aiohttp_server, aiohttp_client, tmp_path):
    """A routine audio call holds the province's emergency room for three hours: "The command vehicle"
    asks before it opens, naming that session and its organizer and the room it moves to; "Back" takes
    nothing; "Open now" opens it, and the session is moved as the confirmation said."""
    from datetime import timedelta
    url = f"sqlite:///{tmp_path}/confirm.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    c = await aiohttp_client(server)
    tokens = add_users(url, [("Olga Organizer", Role.ORGANIZER, None)])
    engine = make_engine(url)
    _, duty = UserStore(engine).add("Duty Officer Wang", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    start = datetime.now(TZ)
    r = await c.post("/api/sessions", headers={"Authorization": f"Bearer {tokens['Olga Organizer']}"}, json={
        "title": "Audio call in the hall", "host_site": "jl/emergency", "sites": ["cc"], "start": start.isoformat(),
        "end": (start + timedelta(hours=3)).isoformat(), "profile": "audio"})
    assert r.status == 201, await r.text()
    routine = await r.json()
    base = f"http://127.0.0.1:{server.port}"
    officer = {"Authorization": f"Bearer {duty}"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await sign_in(page, base, duty, "/duty")
            await page.fill("#title", "Convoy on the G12")
            await page.click('button[data-preset="vehicle"]')
            confirm = page.locator("#confirm")
            await expect(confirm).to_be_visible()
            item = confirm.locator(f'li[data-session="{routine["id"]}"]')
            await expect(item).to_contain_text("“Audio call in the hall” (organizer Olga Organizer)")
            await expect(item).to_contain_text("Jilin Provincial Government moves from")
            await page.screenshot(path=str(ARTIFACTS / "duty-confirm.png"), full_page=True)
            await page.click("#confirm-cancel")
            await expect(confirm).to_be_hidden()
            assert (await (await c.get("/api/emergencies", headers=officer)).json())["emergencies"] == []
            assert (await (await c.get(f"/api/sessions/{routine['id']}", headers=officer)).json())["sites"][0]["room"] == "emergency"

            await page.click('button[data-preset="vehicle"]')
            await page.click("#confirm-open")
            box = page.locator("#running .emergency")
            await expect(box).to_contain_text("Convoy on the G12", timeout=20_000)
            await expect(page.locator("#open-result")).to_contain_text("1 session(s) gave way")
            await expect(box.locator(f'ul.preempted li[data-session="{routine["id"]}"]')).to_have_count(1)
            moved = await (await c.get(f"/api/sessions/{routine['id']}", headers=officer)).json()
            assert moved["sites"][0]["room"] == "main"
            await page.screenshot(path=str(ARTIFACTS / "duty-opened-after-confirm.png"), full_page=True)
            # The organizer's view of the session says where it went and why
            await page.goto(f"{base}/sessions/{routine['id']}")
            await expect(page.locator('#history li[data-kind="move"]')).to_contain_text(
                "Jilin Provincial Government moves from Emergency Command Hall to Main Conference Hall")
            await expect(page.locator("body")).to_contain_text("Jilin Provincial Government / main")
        finally:
            await browser.close()
