"""`confctl dryrun`: a booked meeting rehearsed over the emulated WAN with the others as background load."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from harness.dry_run import background_of, dry_run
from harness.wan import namespaces
from rooms.admission import Accepted
from rooms.booking_form import BookingBody, to_request
from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.topology import demo_topology
from tests.conftest import tomorrow_at

CONFCTL = str(Path(sys.executable).parent / "confctl")


def _book(store: BookingStore, sites: list[str], profile: str, override: bool = False) -> dict:
    t = tomorrow_at(10)
    body = BookingBody(title=f"{profile} meeting", host_site=sites[0], sites=sites[1:], start=t.isoformat(),
                       end=(t + timedelta(hours=1)).isoformat(), profile=profile, plan="cascade")
    req, meta = to_request(body, t - timedelta(days=1))
    out = store.book(req, meta, "usr_test", override=override)
    assert isinstance(out.decision, Accepted), out.decision
    return store.get(out.row["id"])


def _store(tmp_path: Path) -> tuple[str, BookingStore]:
    url = f"sqlite:///{tmp_path}/dry.db"
    engine = make_engine(url)
    upgrade(engine)
    store = BookingStore(engine)
    store.set_topology(demo_topology())
    return url, store


async def test_a_meeting_that_fits_beside_the_others_passes(tmp_path):
    url, store = _store(tmp_path)
    mine = _book(store, ["cc", "cc-nongan", "cc-yushu"], "sd")
    # another meeting on Nong'an's link at that time, in the rooms left (a booking naming none takes the main)
    _book(store, ["cc/emergency", "cc-nongan/emergency", "cc-dehui"], "hd720")
    assert background_of(store, mine)[("cc-nongan", "down")] == 4280
    before = set(namespaces())
    r = await dry_run(url, mine["id"], seconds=5, warmup_s=15)
    print(json.dumps(r.to_dict()["links"], indent=1))
    assert r.passed, r.to_dict()
    nongan = next(x for x in r.links if x["link"] == "cc-nongan" and x["direction"] == "down")
    assert nongan["session_kbps"] == 1760 and nongan["background_kbps"] == 4280
    assert nongan["measured_kbps"] > 0.9 * (1760 + 4280)  # the meeting and the background crossed the link
    assert {s["site"] for s in r.sites} == {"cc", "cc-nongan", "cc-yushu"}
    assert set(namespaces()) == before


def test_an_overbooked_link_fails_the_dry_run_and_names_the_link(tmp_path):
    url, store = _store(tmp_path)
    mine = _book(store, ["cc", "cc-nongan", "cc-yushu"], "sd")
    for other in ("cc-dehui", "cc-jiutai"):  # booked past admission by an admin: 2 x 4,280 + 1,760 > 10,000
        _book(store, ["cc", "cc-nongan", other], "hd720", override=True)
    store.engine.dispose()
    run = subprocess.run([CONFCTL, "dryrun", mine["id"], "--db", url, "--seconds", "5", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]
    report = json.loads(run.stdout)
    failed = [x for x in report["links"] if not x["passed"]]
    assert [(x["link"], x["direction"]) for x in failed] == [("cc-nongan", "down")]
    assert any(not s["passed"] for s in report["sites"] if s["site"] == "cc-nongan")
    missing = subprocess.run([CONFCTL, "dryrun", "ses_nope", "--db", url], capture_output=True, text=True)
    assert missing.returncode != 0 and "ses_nope" in missing.stderr


@pytest.mark.browser
async def test_the_booking_page_rehearses_a_booked_meeting(aiohttp_server, tmp_path):
    from playwright.async_api import async_playwright, expect

    from confctl.app import make_app
    from confctl.config import Settings
    from rooms.store.users import Role
    from rooms.topology import demo_topology_path
    from tests.browser import launch, sign_in
    from tests.conftest import add_users
    url = f"sqlite:///{tmp_path}/page.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    token = add_users(url, [("olga", Role.ORGANIZER, None)])["olga"]
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page()
            await sign_in(page, f"http://127.0.0.1:{server.port}", token, "/book?dryrun_seconds=5")
            await expect(page.locator("#whoami")).to_contain_text("olga (organizer)")
            await page.select_option("#host", "cc")
            await page.check("#site-cc-nongan")
            await page.check("#site-cc-yushu")
            await page.select_option("#profile", "sd")
            await expect(page.locator("#verdict")).to_contain_text("Fits")
            await page.click("#book")
            await expect(page.locator("#booked")).to_contain_text("Booked “")
            await page.click("#dryrun")
            await expect(page.locator("#dryrun_verdict")).to_contain_text("Dry run passed", timeout=150_000)
            await expect(page.locator("#dryrun_links")).to_contain_text("cc-nongan")
            await expect(page.locator("#dryrun_sites")).to_contain_text("cc-yushu: ok")
        finally:
            await browser.close()
