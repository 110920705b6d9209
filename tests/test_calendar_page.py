"""The organizers' calendar (confctl/pages/sessions.*) in real Chromium: a week/day time grid in the province's
time (UTC+08:00) whatever the browser's own zone, one zone label, cancelled sessions struck through with their
state in words, and an ended emergency with its real start and end. The browser runs in Europe/London, so a time
read in the browser's zone would land on another hour, and for an early session on another day."""
from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology, demo_topology_path
from tests.browser import launch, sign_in
from tests.conftest import add_users, booking, tomorrow_at

ARTIFACTS = Path(os.environ.get("CONFCTL_TEST_ARTIFACTS", "var/test-artifacts"))
PROVINCE = timezone(timedelta(hours=8))
CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")


@pytest.fixture
async def network(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/calendar.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    tokens = add_users(url, [("olga", Role.ORGANIZER, None)])
    engine = make_engine(url)
    try:
        tokens["wang"] = UserStore(engine).add("wang", Role.ORGANIZER, None, set(demo_topology().sites), ("emergency",))[1]
    finally:
        engine.dispose()
    yield f"http://127.0.0.1:{server.port}", tokens


@pytest.fixture
async def london():
    """A page in a browser whose own zone is London's (UTC+00:00 or +01:00), not the province's."""
    async with async_playwright() as pw:
        browser = await launch(pw)
        context = await browser.new_context(timezone_id="Europe/London", locale="en-US", viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        await browser.close()
        assert not errors, errors


# Every word on the page and in its tooltips, but for the grid's hour axis (the same 24 hours in any zone).
SHOWN_TEXT = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll(".hours, script, style").forEach((e) => e.remove());
  return copy.textContent + " " + [...copy.querySelectorAll("[title]")].map((e) => e.title).join(" ");
}"""


async def _call(base: str, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        r = await http.request(method, base + path, json=body, headers={"Authorization": f"Bearer {token}"})
        return r.status, await r.json()


async def _top_and_height(locator) -> tuple[float, float]:
    box = await locator.bounding_box()
    assert box is not None
    return box["y"], box["height"]


async def test_the_week_grid_places_sessions_in_province_time_strikes_cancelled_ones_and_names_one_zone(network, london):
    base, tokens = network
    page = london
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # 06:30 in the province is 22:30 or 23:30 of the day before in London: the day and the hours tell the zones apart.
    early = tomorrow_at(6, 30)
    day = early.date().isoformat()
    status, kept = await _call(base, tokens["olga"], "POST", "/api/sessions", {
        **booking(["jl", "cc-nongan"], title="Dawn flood briefing"), "start": early.isoformat(),
        "end": (early + timedelta(minutes=90)).isoformat()})
    assert status == 201, kept
    status, dropped = await _call(base, tokens["olga"], "POST", "/api/sessions", booking(["jl", "sp"], hour=14, title="Budget review"))
    assert status == 201, dropped
    status, _ = await _call(base, tokens["olga"], "DELETE", f"/api/sessions/{dropped['id']}")
    assert status == 200

    await sign_in(page, base, tokens["olga"], f"/sessions?view=week&date={day}")
    column = page.locator(f'.grid .day-col[data-day="{day}"]')
    block = column.locator(f'a.event[data-session="{kept["id"]}"]')
    await expect(block.locator(".t")).to_have_text("06:30–08:00")
    # Placed by the grid's own hour axis: its top at 06:30, an hour and a half tall.
    six, _ = await _top_and_height(page.locator('.hour[data-hour="6"]'))
    seven, _ = await _top_and_height(page.locator('.hour[data-hour="7"]'))
    hour_px = seven - six
    col_top, _ = await _top_and_height(column)
    top, height = await _top_and_height(block)
    assert abs((top - col_top) - 6.5 * hour_px) <= 2, (top, col_top, hour_px)
    assert abs(height - 1.5 * hour_px) <= 4, (height, hour_px)
    await expect(page.locator(f'.day-col[data-day="{(early - timedelta(days=1)).date().isoformat()}"] a.event')).to_have_count(0)

    cancelled = column.locator(f'a.event[data-session="{dropped["id"]}"]')
    await expect(cancelled).to_have_class(re.compile(r"\bcancelled\b"))
    await expect(cancelled.locator(".state")).to_have_text("cancelled")
    await expect(cancelled.locator(".t")).to_have_text("14:00–15:00")
    struck = await cancelled.locator(".title").evaluate("e => getComputedStyle(e).textDecorationLine")
    assert "line-through" in struck
    assert "line-through" not in await cancelled.locator(".state").evaluate("e => getComputedStyle(e).textDecorationLine")

    # One zone on the page, said once; every time shown is a province time, none 12-hour.
    await expect(page.locator("#zone")).to_have_text("times in China Standard Time, UTC+08:00")
    text = await page.locator("body").inner_text()
    assert text.count("UTC") == 1 and "China Standard Time" in text
    assert not re.search(r"\b[AP]M\b", text)
    shown = set(CLOCK.findall(await page.evaluate(SHOWN_TEXT)))
    now = datetime.now(PROVINCE)
    if await page.locator(".now").count():  # today's "now" line, when today is in view, says the province's time too
        (said,) = CLOCK.findall(await page.locator(".now").get_attribute("title") or "")
        assert said in {f"{now + timedelta(minutes=m):%H:%M}" for m in (-1, 0)}, said
        shown.discard(said)
    assert shown == {"06:30", "08:00", "14:00", "15:00"}, shown  # 22:30 or 23:30 (London) nowhere, nor UTC's
    today = datetime.now(PROVINCE).date().isoformat()
    monday = early - timedelta(days=early.weekday())
    if today >= monday.date().isoformat():  # tomorrow is in this week unless it is a Monday
        await expect(page.locator(f'.day-head.is-today[data-day="{today}"] .today-mark')).to_have_text("today")
    await page.screenshot(path=str(ARTIFACTS / "calendar-week-grid.png"), full_page=True)

    # Week to week, into one day and back a day; today is marked on its own week.
    await page.click("#next")
    await expect(page.locator(".grid .day-col").first).to_have_attribute(
        "data-day", (early + timedelta(days=7 - early.weekday())).date().isoformat())
    await page.click("#go_today")
    await expect(page.locator(f'.day-head.is-today[data-day="{today}"]')).to_be_visible()
    await expect(page.locator(".day-col.is-today .now")).to_have_count(1)
    await page.goto(f"{base}/sessions?view=week&date={day}")
    await page.click(f'.day-head[data-day="{day}"]')
    await expect(page.locator(".grid .day-col")).to_have_count(1)
    await expect(page.locator(".day-col a.event")).to_have_count(2)
    assert f"date={day}" in page.url and "view=day" in page.url
    await page.screenshot(path=str(ARTIFACTS / "calendar-day-grid.png"), full_page=True)
    await page.click("#prev")
    await expect(page.locator(".grid .day-col")).to_have_attribute("data-day", (early - timedelta(days=1)).date().isoformat())
    await expect(page.locator(".day-col a.event")).to_have_count(0)

    # The list, as before the grid: the same sessions, the cancelled one struck through too.
    await page.goto(f"{base}/sessions?view=week&date={day}&shape=list")
    item = page.locator(f'.list-day[data-day="{day}"] a.event[data-session="{kept["id"]}"]')
    await expect(item.locator(".t")).to_have_text("06:30–08:00")
    await expect(page.locator(f'.list-day[data-day="{day}"] a.event.cancelled .state')).to_have_text("cancelled")
    await page.screenshot(path=str(ARTIFACTS / "calendar-week-list.png"), full_page=True)


async def test_an_ended_emergency_shows_its_real_start_and_end(network, london):
    """It read "03:54 AM–03:54 AM": an emergency ended within the minute it opened, its times shown to the
    minute (in the browser's zone). Its start and end are shown to the second when they share a minute."""
    base, tokens = network
    page = london
    status, opened = await _call(base, tokens["wang"], "POST", "/api/emergencies", {"preset": "vehicle", "hours": 1})
    assert status == 201, opened
    start = datetime.fromisoformat(opened["start"])
    deadline = time.monotonic() + 10
    while datetime.now(timezone.utc) < start + timedelta(seconds=2):  # it has run two seconds
        assert time.monotonic() < deadline
        await page.wait_for_timeout(100)
    status, ended = await _call(base, tokens["wang"], "POST", f"/api/emergencies/{opened['id']}/end")
    assert status == 200, ended
    a, b = (datetime.fromisoformat(ended[k]).astimezone(PROVINCE) for k in ("start", "end"))
    assert b > a
    shape = "%H:%M:%S" if a.replace(second=0) == b.replace(second=0) else "%H:%M"
    span = f"{a.strftime(shape)}–{b.strftime(shape)}"
    assert a.strftime(shape) != b.strftime(shape)

    await sign_in(page, base, tokens["wang"], f"/sessions?view=day&date={a.date().isoformat()}")
    block = page.locator(f'a.event[data-session="{opened["id"]}"]')
    await expect(block.locator(".t")).to_have_text(span)
    await expect(block.locator(".state")).to_have_text("emergency · ended")
    await page.screenshot(path=str(ARTIFACTS / "calendar-ended-emergency.png"), full_page=True)
    await block.click()
    await expect(page.locator("#when")).to_have_text(f"{a.date().isoformat()} {span}")
    await expect(page.locator("#status")).to_contain_text("Ended.")
    assert (await page.locator("body").inner_text()).count("UTC") == 1


async def test_a_sites_list_with_cancelled_sessions_keeps_them(api):
    """The calendar asks for cancelled sessions too; at one site (a technician's calendar) as well."""
    booked = await (await api.post("/api/sessions", json=booking(["cc", "cc-nongan"]), headers=api.h("olga"))).json()
    other = await (await api.post("/api/sessions", json=booking(["jl", "sp"], hour=15), headers=api.h("olga"))).json()
    assert (await api.delete(f"/api/sessions/{booked['id']}", headers=api.h("olga"))).status == 200
    for who in ("olga", "tina"):
        listed = await (await api.get("/api/sessions?site=cc-nongan&include_cancelled=true", headers=api.h(who))).json()
        assert [(s["id"], s["status"]) for s in listed["sessions"]] == [(booked["id"], "cancelled")]
        plain = await (await api.get("/api/sessions?site=cc-nongan", headers=api.h(who))).json()
        assert plain["sessions"] == []
    every = await (await api.get("/api/sessions?include_cancelled=true", headers=api.h("olga"))).json()
    assert {s["id"]: s["status"] for s in every["sessions"]} == {booked["id"]: "cancelled", other["id"]: "booked"}
    r = await api.get("/api/sessions?include_cancelled=yes", headers=api.h("olga"))
    assert r.status == 400 and "true or false" in (await r.json())["detail"]
