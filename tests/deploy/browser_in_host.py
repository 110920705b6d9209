"""A technician's browser on an emulated host: run INSIDE the host's network namespace,

    ip netns exec NS .venv/bin/python tests/deploy/browser_in_host.py URL [--probe] [--frames N] [--hold]

with HOME pointing at a home whose NSS database ($HOME/.pki/nssdb) trusts the test's CA (Chromium
on Linux verifies certificates against it). Debian's Chromium, headless, with tests/browser.py's
flags and its fake camera and microphone, driven by Playwright from this process (so the browser,
the page and its WebRTC leg all live in the namespace).

Default (join): opens the join link, waits for the session's details, presses "Join with camera and
microphone" as a technician would, and waits (--timeout) until the page has decoded --frames frames
of the video it receives and a tile plays. Then prints ONE JSON line on stdout:

    {"secure_context", "media_devices", "status", "frames_decoded", "program", "page_status",
     "remote_candidates": [{"address", "port", "protocol", "type"}], "selected_remote": {...},
     "local_candidates": [...], "errors": [page errors and what failed here], "console_errors",
     "timings": {"loaded_s", "info_s", "joined_s", "first_frame_s", "done_s"}}

(the candidates come from the page's RTCPeerConnection, the script-level `pc` of join.js, through
getStats). With --hold it then keeps the page, and its leg, until a line arrives on stdin (or stdin
closes), prints a second line {"final": {"frames_decoded", "still_flowing"}} (whether more frames
arrived meanwhile, waiting up to 5 s) and closes the browser: the test
releases every browser together once all of them are done.

--probe: opens the URL and reports only secure_context, media_devices, status and errors (to check
that the host trusts the CA and the page gets a secure context).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.browser

from playwright.async_api import Error as PlaywrightError  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from tests.browser import launch  # noqa: E402

STATS = """async () => {
  // `pc` is join.js's script-level binding (a classic script's global lexical scope).
  if (typeof pc === "undefined" || !pc) return null;
  const report = await pc.getStats();
  const cand = (s) => s && ({ address: s.address || s.ip || null, port: s.port, protocol: s.protocol,
                              type: s.candidateType });
  const remote = [], local = [];
  let selected = null, state = pc.connectionState;
  report.forEach((s) => {
    if (s.type === "remote-candidate") remote.push(cand(s));
    if (s.type === "local-candidate") local.push(cand(s));
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = report.get(s.selectedCandidatePairId);
      if (pair) selected = { remote: cand(report.get(pair.remoteCandidateId)), local: cand(report.get(pair.localCandidateId)) };
    }
  });
  return { remote, local, selected, state };
}"""

PLAYING = """() => [...document.querySelectorAll(".tile:not([hidden]) video")].some((v) => v.videoWidth > 0)"""


async def main(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    out: dict = {"url": args.url, "errors": [], "console_errors": [], "timings": {}}

    def mark(name: str) -> None:
        out["timings"][name] = round(time.monotonic() - t0, 2)

    def emit(doc: dict) -> None:
        print(json.dumps(doc), flush=True)

    async with async_playwright() as pw:
        browser = await launch(pw, fake_devices=True)
        try:
            ctx = await browser.new_context(permissions=["camera", "microphone"])
            page = await ctx.new_page()
            page.on("pageerror", lambda e: out["errors"].append(f"page: {e}"))
            page.on("console", lambda m: out["console_errors"].append(m.text) if m.type == "error" else None)
            try:
                resp = await page.goto(args.url, timeout=args.timeout * 1000)
                out["status"] = resp.status if resp else None
                mark("loaded_s")
                out["secure_context"] = await page.evaluate("window.isSecureContext")
                out["media_devices"] = await page.evaluate("!!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)")
                if not args.probe:
                    await join(page, args, out, mark, t0)
            except (PlaywrightError, AssertionError, asyncio.TimeoutError) as exc:
                out["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                try:
                    out["page_status"] = await page.text_content("#status", timeout=1000)
                except PlaywrightError:
                    pass
            emit(out)
            if args.hold:
                await asyncio.to_thread(sys.stdin.readline)  # the test releases every browser together
                emit({"final": await final_figures(page, out.get("frames_decoded") or 0)})
        finally:
            await browser.close()
    return 0


async def final_figures(page, reported: int) -> dict:  # type: ignore[no-untyped-def]
    """Whether video still arrived while the page was held: more frames decoded than reported (the
    page counts once a second), within 5 s."""
    try:
        await page.wait_for_function(f"window.confctlStats.framesDecoded > {reported}", timeout=5000)
        flowing = True
    except PlaywrightError:
        flowing = False
    try:
        return {"frames_decoded": await page.evaluate("window.confctlStats.framesDecoded"), "still_flowing": flowing}
    except PlaywrightError as exc:
        return {"error": str(exc).splitlines()[0], "still_flowing": False}


async def join(page, args: argparse.Namespace, out: dict, mark, t0: float) -> None:  # type: ignore[no-untyped-def]
    # The session's details loaded (join-info) and the join buttons enabled: what the technician waits for.
    await page.wait_for_function("document.getElementById('title').textContent !== '…' && "
                                 "!document.getElementById('camera').disabled", timeout=args.timeout * 1000)
    mark("info_s")
    out["title"] = await page.text_content("#title")
    await page.click("#camera")
    mark("joined_s")
    deadline = t0 + args.timeout
    frames = 0
    while True:
        frames = await page.evaluate("window.confctlStats.framesDecoded")
        if frames > 0 and "first_frame_s" not in out["timings"]:
            mark("first_frame_s")
        if frames >= args.frames and await page.evaluate(PLAYING):
            break
        if time.monotonic() > deadline:
            out["frames_decoded"] = frames
            raise AssertionError(f"decoded {frames} frames of the {args.frames} wanted within {args.timeout} s")
        await page.wait_for_timeout(250)  # polling the condition above, with its deadline
    mark("done_s")
    out["frames_decoded"] = frames
    out["program"] = await page.text_content("#program")
    out["page_status"] = await page.text_content("#status")
    out["tiles"] = await page.evaluate("""() => [...document.querySelectorAll(".tile:not([hidden])")].map(
        (t) => ({ site: t.dataset.site, label: t.querySelector(".label").textContent,
                  width: t.querySelector("video").videoWidth }))""")
    stats = await page.evaluate(STATS)
    if stats is None:
        out["errors"].append("the page has no RTCPeerConnection (`pc`) to read candidates from")
    else:
        out["remote_candidates"] = stats["remote"]
        out["local_candidates"] = stats["local"]
        out["selected"] = stats["selected"]
        out["connection_state"] = stats["state"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--probe", action="store_true", help="only open the URL: secure context, status, errors")
    ap.add_argument("--frames", type=int, default=60, help="frames of received video to decode before reporting")
    ap.add_argument("--timeout", type=float, default=60, help="seconds for the whole join, from start")
    ap.add_argument("--hold", action="store_true", help="keep the page until a line arrives on stdin")
    sys.exit(asyncio.run(main(ap.parse_args())))
