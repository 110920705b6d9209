"""The wall screen after the fact, in Debian's Chromium at 1920×1080: the operators' page opened after an
emergency pre-empted a routine session and gave it back, and after an absence alarm raised and cleared,
shows all of it from the history; and no site name on it (nor on the duty officer's page) is cut off:
every name element fits its box (scrollWidth <= clientWidth) and carries the full name as its title."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
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
from tests.media.peers import until
from tests.media.test_signalling import TZ
from tests.test_monitoring import join_talking

pytestmark = pytest.mark.browser
ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))
WALL = {"width": 1920, "height": 1080}

NAMES_JS = """() => [...document.querySelectorAll('.name')].map((e) => ({
  text: e.textContent, title: e.title, sw: e.scrollWidth, cw: e.clientWidth, shown: e.getClientRects().length > 0}))"""


def assert_names_fit(names: list[dict], where: str) -> None:
    shown = [n for n in names if n["shown"]]
    assert shown, f"no name shown on {where}"
    cut = [n for n in shown if n["sw"] > n["cw"] or n["cw"] == 0]
    assert not cut, f"names cut off on {where}: {cut[:5]}"
    # the whole name, or a shortening of it (a site under its parent without the parent's name), and the whole
    # name on hover
    untitled = [n for n in shown if not n["title"] or not (n["text"].startswith(n["title"])
                                                            or n["title"].endswith(n["text"]))]
    assert not untitled, f"names without their full name on hover on {where}: {untitled[:5]}"


async def test_the_panels_show_what_happened_before_the_page_opened_and_names_fit_at_1920(
        aiohttp_server, aiohttp_client, tmp_path):
    alarms = tmp_path / "alarms.yaml"
    alarms.write_text(json.dumps({"defaults": {"absent_s": 1}}))
    url = f"sqlite:///{tmp_path}/wall.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    quality_sample_s=1.0, alarms_file=alarms)))
    c = await aiohttp_client(server)
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    engine = make_engine(url)
    _, duty = UserStore(engine).add("Duty Officer Wang", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))
    engine.dispose()
    olga, op, officer = ({"Authorization": f"Bearer {t}"} for t in (tokens["olga"], tokens["opal"], duty))
    topo = demo_topology()
    start = datetime.now(TZ)

    async def booked(title: str, host: str, sites: list[str], profile: str, hours: float) -> dict:
        r = await c.post("/api/sessions", headers=olga, json={
            "title": title, "host_site": host, "sites": sites, "start": start.isoformat(),
            "end": (start + timedelta(hours=hours)).isoformat(), "profile": profile})
        assert r.status == 201, await r.text()
        return await r.json()

    async def alarms_of(session: str) -> list[dict]:
        rows = (await (await c.get("/api/alarms", headers=op)).json())["alarms"]
        return [a for a in rows if a["session_id"] == session]

    # Before anyone opens the page: Qian Gorlos never joins the roll call (an absence alarm), which is then
    # cancelled (the alarm clears); an emergency pre-empts the county budget and, ended, gives it back.
    roll = await booked("Morning roll call", "jl", ["sy-qiangorlos"], "sd", 1)
    await until(lambda: _any(alarms_of(roll["id"]), lambda a: a["site_id"] == "sy-qiangorlos"), timeout=20,
                what="Qian Gorlos raised absent")
    assert (await c.delete(f"/api/sessions/{roll['id']}", headers=olga)).status in (200, 204)
    await until(lambda: _any(alarms_of(roll["id"]), lambda a: a["cleared_at"]), timeout=20, what="its alarm cleared")
    routine = await booked("County budget", "cc", ["cc-nongan", "cc-yushu"], "hd720", 3)
    r = await c.post("/api/emergencies", headers=officer, json={"preset": "prefecture:cc", "profile": "hd720",
                                                                 "title": "Flood on the Yitong"})
    assert r.status == 201, await r.text()
    emergency = await r.json()
    assert {x["session_id"] for x in emergency["preempted"]} == {routine["id"]}

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    peers, sockets = {}, []
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page(viewport=WALL)
            # the duty officer's page with the emergency running: its sites' names fit
            await sign_in(page, base := f"http://127.0.0.1:{server.port}", duty, "/duty")
            box = page.locator("#running .emergency")
            await expect(box.locator('tr[data-site="cc-nongan"]')).to_contain_text(topo.sites["cc-nongan"].name,
                                                                                   timeout=20_000)
            assert_names_fit(await page.evaluate(NAMES_JS), "/duty")
            assert (await c.post(f"/api/emergencies/{emergency['id']}/end", headers=officer)).status == 200
            await join_talking(c, routine, ("cc", "cc-nongan"), peers, sockets)

            # the operators' page opens now, after all of that
            await page.context.clear_cookies()
            await sign_in(page, base, tokens["opal"], "/operator")
            taken = page.locator(f'#preemptions li[data-session="{routine["id"]}"][data-event="preempted"]')
            await expect(taken).to_have_count(1, timeout=10_000)  # one event: both links at once
            await expect(taken).to_have_attribute("data-history", "yes")
            await expect(taken).to_contain_text("“County budget” for “Flood on the Yitong”")
            await expect(taken).to_contain_text("cc-nongan down: the speaker only")
            await expect(page.locator(f'#preemptions li[data-session="{routine["id"]}"][data-event="restored"]')
                         ).to_contain_text("Restored “County budget”")
            cleared = page.locator('#alarm-history li[data-kind="site_absent"]')
            await expect(cleared.filter(has_text=f"{topo.sites['sy-qiangorlos'].name} has not joined “Morning roll "
                                                 "call”")).to_have_count(1)

            # names fit: the whole tree, and a live session's legs
            await expect(page.locator(f'#session-{routine["id"]} tr[data-site="cc-nongan"]')).to_contain_text(
                topo.sites["cc-nongan"].name, timeout=20_000)
            names = await page.evaluate(NAMES_JS)
            assert_names_fit(names, "/operator")
            assert {n["title"] for n in names} >= {s.name for s in topo.sites.values()}  # every site, whole
            await page.screenshot(path=str(ARTIFACTS / "operator-history-1920x1080.png"), full_page=True)
        finally:
            await browser.close()
            for ws in sockets:
                await ws.close()
            for p in peers.values():
                await p.close()


async def _any(rows, predicate) -> bool:  # type: ignore[no-untyped-def]
    return any(predicate(a) for a in await rows)
