"""A session booked with `codec: h264`: stored, shown by the API, carried to the node, and two Chromium
sites (Debian's, fake cameras) each decoding the other's H.264 through the node."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from playwright.async_api import async_playwright

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.browser import launch
from tests.conftest import add_users

# what the page's peer connection decodes: each inbound video stream's codec and frames decoded
INBOUND_VIDEO = """async () => {
    const report = await pc.getStats();
    const out = [];
    report.forEach(s => {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.codecId) {
            out.push({mime: report.get(s.codecId).mimeType, fmtp: report.get(s.codecId).sdpFmtpLine || "",
                      frames: s.framesDecoded || 0});
        }
    });
    return out;
}"""


@pytest.fixture
async def api(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/h264.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    token = add_users(url, [("olga", Role.ORGANIZER, None)])["olga"]
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession(base, headers={"Authorization": f"Bearer {token}"}) as http:
        yield http


def booking(later_h: int = 0, **extra: object) -> dict:
    start = datetime.now(timezone(timedelta(hours=8))) + timedelta(hours=later_h)
    return {"title": "Room systems drill", "host_site": "jl", "sites": ["sp"], "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd", **extra}


async def test_a_booking_keeps_its_codec_vp8_unless_asked_and_an_unknown_one_is_refused_in_words(api):
    r = await api.post("/api/sessions", json=booking(later_h=2))
    assert r.status == 201 and (await r.json())["codec"] == "vp8"
    r = await api.post("/api/sessions", json=booking(codec="h264"))
    assert r.status == 201
    sid = (await r.json())["id"]
    assert (await (await api.get(f"/api/sessions/{sid}")).json())["codec"] == "h264"
    # an edit that does not name the codec keeps it
    r = await api.patch(f"/api/sessions/{sid}", json={"title": "Room systems drill, moved"})
    assert r.status == 200 and (await r.json())["codec"] == "h264"
    r = await api.post("/api/sessions", json=booking(codec="av1"))
    assert r.status == 422
    body = await r.json()
    assert body["error"] == "invalid_body" and body["detail"] == [{"field": "codec", "problem": "Input should be 'vp8' or 'h264'"}]


@pytest.mark.browser
async def test_two_chromium_sites_in_an_h264_session_decode_each_others_h264(api):
    # central: both sites on one node (cascade trunks between nodes still negotiate VP8: issue 26's next slice)
    r = await api.post("/api/sessions", json=booking(codec="h264", plan="central"))
    assert r.status == 201
    session = await r.json()
    assert len(set(session["media_plan"]["attachments"].values())) == 1
    async with async_playwright() as pw:
        browser = await launch(pw, fake_devices=True)
        try:
            pages = {}
            for site in ("jl", "sp"):
                ctx = await browser.new_context(permissions=["camera", "microphone"])
                page = pages[site] = await ctx.new_page()
                assert (await page.goto(session["join_urls"][site])).status == 200
                await page.click("#camera")
            # each site decodes the other's camera as H.264 constrained baseline, its frames decoded rising
            first: dict[str, int] = {}
            deadline = datetime.now() + timedelta(seconds=40)
            while True:
                seen = {s: await p.evaluate(INBOUND_VIDEO) for s, p in pages.items()}
                decoding = {s: [x for x in v if x["frames"] > 0] for s, v in seen.items()}
                if all(decoding.values()):
                    for s, streams in decoding.items():
                        assert {x["mime"] for x in streams} == {"video/H264"}, (s, streams)
                        assert all("profile-level-id=42e01f" in x["fmtp"] and "packetization-mode=1" in x["fmtp"]
                                   for x in streams), (s, streams)
                    frames = {s: max(x["frames"] for x in v) for s, v in decoding.items()}
                    first = first or frames
                    if all(frames[s] > first[s] + 20 for s in frames):
                        break
                if datetime.now() > deadline:
                    status = {s: await p.text_content("#status") for s, p in pages.items()}
                    raise AssertionError(f"H.264 not decoded at both sites: {seen}, page status: {status}")
                await pages["jl"].wait_for_timeout(500)  # polling a condition, with the deadline above
            # and each sends H.264 to the node: nothing else was negotiated
            for s, page in pages.items():
                sent = await page.evaluate("""async () => {
                    const report = await pc.getStats(); const out = [];
                    report.forEach(s => { if (s.type === "outbound-rtp" && s.kind === "video" && s.codecId)
                        out.push(report.get(s.codecId).mimeType); });
                    return out; }""")
                assert sent and set(sent) == {"video/H264"}, (s, sent)
        finally:
            await browser.close()
