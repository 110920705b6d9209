"""Launching Debian's Chromium for the page tests (Playwright cannot download browsers here)."""
from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, refused on this network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-quic", "--disable-sync"]
FAKE_DEVICES = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


async def launch(pw, fake_devices: bool = False):  # type: ignore[no-untyped-def]
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=FLAGS + (FAKE_DEVICES if fake_devices else []))


async def sign_in(page, base: str, token: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in through the sign-in page as a person would, landing on `path`."""
    from urllib.parse import quote
    await page.goto(f"{base}/signin?next={quote(path, safe='')}")
    await page.fill("#token", token)
    await page.click("#go")
    await page.wait_for_url(f"{base}{path}")
