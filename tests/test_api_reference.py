"""/api: a readable API reference in Debian's Chromium, built from /api/openapi.json, nothing fetched from outside."""
from __future__ import annotations

import json

import pytest
from playwright.async_api import async_playwright, expect

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from tests.browser import launch

pytestmark = pytest.mark.browser


async def test_the_api_reference_lists_every_route_from_the_openapi_document_offline(aiohttp_server, tmp_path):
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(),
                                                    db_url=f"sqlite:///{tmp_path}/api.db")))
    base = f"http://127.0.0.1:{server.port}"
    outside: list[str] = []
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            page = await browser.new_page()
            page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:") else outside.append(r.url))
            await page.goto(f"{base}/api")
            booking = page.locator(".opblock", has_text="/api/sessions/check")
            await expect(booking).to_contain_text("Dry run: the decision a booking would get now")
            await expect(page.locator(".opblock", has_text="/api/cdrs").first).to_be_visible()
            # /ws is no route OpenAPI can describe: the page and the document's own description link its schema.
            await expect(page.locator(".info a[href='/api/ws-schema.json']")).to_be_visible()
            await page.click("#ws_schema")
            schema = json.loads(await page.locator("body").inner_text())
            assert schema["title"] == "confctl /ws" and {"ToServer", "ToSite"} <= set(schema["$defs"])
        finally:
            await browser.close()
    assert outside == []
