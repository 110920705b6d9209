"""Meetings outlive a control plane: with the only `confctl serve` killed (SIGKILL) and started again 20 s
later, two Chromium sites on two node processes keep decoding each other throughout, and the restarted
control plane rebuilds its live view (/api/live) from the nodes as they register again."""
from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

import aiohttp
from playwright.async_api import async_playwright

from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.browser import launch
from tests.conftest import add_users
from tests.media.node_processes import CONFCTL, free_port, wait_serving, now8, start_node, wait_registered
from tests.media.peers import until
from tests.test_join_page import _COUNT_PAINTS, join_with_camera

DOWN_S = 20


def serve(db: str, port: int, log) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen([CONFCTL, "serve", "--db", db, "--topology", str(demo_topology_path()), "--port", str(port),
                             "--sip-port", "0"], stdout=log, stderr=subprocess.STDOUT)


async def test_two_sites_keep_decoding_while_the_only_control_plane_is_killed_and_restarted(tmp_path):
    db, port = f"sqlite:///{tmp_path}/cp.db", free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    cp = serve(db, port, log)
    nodes: dict[str, subprocess.Popen] = {}
    try:
        async with aiohttp.ClientSession() as http:
            await wait_serving(http, base, cp)
            tokens = add_users(db, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None),
                                    ("node-jl", Role.NODE, None), ("node-cc", Role.NODE, None)])
            for nid in ("node-jl", "node-cc"):
                nodes[nid] = start_node(base, tokens[nid], nid, tmp_path / "rec")[0]
            await wait_registered(http, base, tokens["opal"], nodes)
            start = now8()
            r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {tokens['olga']}"}, json={
                "title": "Outlives", "host_site": "jl", "sites": ["cc-nongan"], "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd", "plan": "cascade"})
            assert r.status == 201, await r.text()
            session = await r.json()
            op = {"Authorization": f"Bearer {tokens['opal']}"}

            async def both_legs_live() -> bool:
                try:
                    async with http.get(f"{base}/api/live", headers=op) as r:
                        live = await r.json()
                except aiohttp.ClientConnectorError:
                    return False
                return {leg["site"] for x in live["sessions"] if x["session"] == session["id"]
                        for leg in x["legs"]} == {"jl", "cc-nongan"}

            async with async_playwright() as pw:
                browser = await launch(pw, fake_devices=True)
                try:
                    pages = await join_with_camera(browser, session, ("jl", "cc-nongan"))
                    for site, page in pages.items():
                        await page.wait_for_function("window.confctlStats.framesDecoded > 30", timeout=30000)
                    await until(both_legs_live, timeout=15, what="both legs in /api/live")
                    await pages["jl"].evaluate(_COUNT_PAINTS, "cc-nongan")
                    await pages["cc-nongan"].evaluate(_COUNT_PAINTS, "jl")
                    cp.send_signal(signal.SIGKILL)
                    cp.wait(timeout=10)
                    killed = time.monotonic()
                    await pages["jl"].wait_for_timeout(DOWN_S * 1000)  # the outage measured, not a wait for a state
                    cp = serve(db, port, log)
                    await until(both_legs_live, timeout=30, what="the restarted control plane listing both legs")
                    rebuilt = time.monotonic() - killed - DOWN_S
                    for site, page in pages.items():
                        paints = await page.evaluate("window.paints")
                        longest = max(b - a for a, b in zip(paints, paints[1:]))
                        span = (paints[-1] - paints[0]) / 1000
                        print(f"{site}: {len(paints)} frames painted over {span:.0f} s, longest gap {longest:.0f} ms")
                        assert span >= DOWN_S and longest <= 500, (site, longest)
                        assert await page.evaluate("window.confctlStats.rejoins") == 0  # never lost its node
                    print(f"restarted control plane listed both legs {rebuilt:.1f} s after it was started again")
                finally:
                    await browser.close()
    finally:
        for p in [cp, *nodes.values()]:
            if p.poll() is None:
                p.terminate()
        for p in [cp, *nodes.values()]:
            p.wait(timeout=15)
        log.close()
