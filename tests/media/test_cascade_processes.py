"""A cascade over `confctl media-node` processes: each site on its own node, trunks between processes.

The control plane and three node processes (the province's node-jl, node-cc, node-sp) on
loopback. Sites join through the control plane and are redirected to the node their plan
names; the child nodes link to the root over /trunk; speaker changes cross processes; a
phone dialing the session through the control plane's SIP gateway meets them (the gateway's
room links to the root like a child node); a killed node's site is re-placed and its join
page rejoins on its own.
"""
from __future__ import annotations

import time
from datetime import timedelta

import aiohttp
import pytest
from playwright.async_api import async_playwright

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.browser import launch
from tests.conftest import add_users
from tests.media.node_processes import join_site, now8, start_node, wait_registered
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of
from tests.sip.baresip import Baresip
from tests.sip.test_sipp import bound_sip_port

NODES = ("node-jl", "node-cc", "node-sp")


@pytest.fixture
async def plane(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/cp.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    recordings_dir=tmp_path / "rec", sip_port=0)))
    sip_port = bound_sip_port(server.app)
    engine = make_engine(url)
    SipStore(engine).add_account("desk-sp", "sp", "phone-pass-1", "confctl")
    engine.dispose()
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None),
                             *((nid, Role.NODE, None) for nid in NODES)])  # one credential per node id
    base = f"http://127.0.0.1:{server.port}"
    procs, ports = {}, {}
    for nid in NODES:
        procs[nid], ports[nid] = start_node(base, tokens[nid], nid, tmp_path / "rec")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_registered(http, base, tokens["opal"], procs)
            yield {"base": base, "tokens": tokens, "http": http, "procs": procs, "ports": ports, "server": server,
                   "sip_port": sip_port, "db_url": url}
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(timeout=10)


async def book(plane, sites: list[str], plan: str = "cascade", record: bool = False) -> dict:
    start = now8()
    r = await plane["http"].post(f"{plane['base']}/api/sessions",
                                 headers={"Authorization": f"Bearer {plane['tokens']['olga']}"}, json={
        "title": "Across node processes", "host_site": sites[0], "sites": sites[1:], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "profile": "sd", "plan": plan, "record": record})
    assert r.status == 201, await r.text()
    return await r.json()


async def live(plane) -> dict:
    r = await plane["http"].get(f"{plane['base']}/api/live", headers={"Authorization": f"Bearer {plane['tokens']['opal']}"})
    return await r.json()


async def test_sites_meet_across_node_processes_and_speaker_changes_cross_them(plane):
    s = await book(plane, ["jl", "cc-nongan", "sp-lishu"])
    joined = {}
    try:
        for site, shade, talking in (("jl", 40, False), ("cc-nongan", 120, False), ("sp-lishu", 200, True)):
            joined[site] = await join_site(plane["http"], plane["base"], s, site, SitePeer(shade, talking))
        # Each site was sent to the node its plan names.
        assert {site: j.node_url for site, j in joined.items()} == {
            "jl": f"ws://127.0.0.1:{plane['ports']['node-jl']}/ws",
            "cc-nongan": f"ws://127.0.0.1:{plane['ports']['node-cc']}/ws",
            "sp-lishu": f"ws://127.0.0.1:{plane['ports']['node-sp']}/ws"}
        await until(lambda: all(len(j.peer.frames) == 2 and min(j.peer.frames.values()) >= 30
                                for j in joined.values()), timeout=40, what="two videos at every site, across processes")
        # The talker in Siping is elected at the root (from node-sp's levels) and reaches every program.
        def speaker_everywhere(speaker: str) -> bool:
            return all(j.programs and j.programs[-1][1]["audio"] == speaker and speaker in j.programs[-1][1]["video"]
                       for site, j in joined.items() if site != speaker)
        await until(lambda: speaker_everywhere("sp-lishu"), timeout=15, what="sp-lishu heard everywhere")
        # Siping falls silent, Nong'an (node-cc) speaks: the change crosses three processes.
        joined["sp-lishu"].peer.microphone.talking = False
        joined["cc-nongan"].peer.microphone.talking = True
        changed = time.monotonic()
        await until(lambda: speaker_everywhere("cc-nongan"), timeout=15, what="cc-nongan heard everywhere")
        took = time.monotonic() - changed
        print(f"speaker change on node-cc reached every site's program in {took:.2f} s")
        assert took <= 2.0  # the bound
        seen = {site: dict(j.peer.frames) for site, j in joined.items()}
        await until(lambda: all(min(j.peer.frames[i] - seen[site][i] for i in (0, 1)) >= 15
                                for site, j in joined.items()), timeout=20, what="frames after the switch")
        view = await live(plane)
        (root,) = [x for x in view["sessions"] if x["session"] == s["id"] and x["node"] == "node-jl"]
        trunks = {t["child"]: t for t in root["trunks"]}
        assert set(trunks) == {"node-cc", "node-sp"} and all(t["connected"] for t in trunks.values())
        assert all(t["bytes_down"] > 0 and t["bytes_up"] > 0 and t["process"] == "node process" for t in trunks.values())
        assert trunks["node-sp"]["up"][0] == "sp-lishu"  # Siping's audio goes up: it is the speaker

        async def trunk_rates() -> bool:  # kbit/s each way for operators, from the previous reading
            again = [t for x in (await live(plane))["sessions"] if x["node"] == "node-jl" for t in x["trunks"]]
            return len(again) == 2 and all(t.get("kbps_down", 0) > 0 and t.get("kbps_up", 0) > 0 for t in again)
        await until(trunk_rates, timeout=10, what="trunk kbit/s in /api/live")
        on = {x["node"]: {leg["site"] for leg in x["legs"]} for x in view["sessions"] if x["session"] == s["id"]}
        assert on == {"node-jl": {"jl"}, "node-cc": {"cc-nongan"}, "node-sp": {"sp-lishu"}}
        # A grant for node-cc replayed at node-sp is refused (signed with node-cc's own key, it does not even
        # verify there); the session keeps flowing.
        cp = await plane["http"].ws_connect(f"{plane['base']}/ws")
        await cp.send_json({"type": "join", "token": token_of(s, "cc-nongan")})
        grant = (await next_of(cp, "redirect"))["grant"]
        await cp.close()
        wrong = await plane["http"].ws_connect(f"ws://127.0.0.1:{plane['ports']['node-sp']}/ws")
        await wrong.send_json({"type": "join", "grant": grant})
        refusal = await next_of(wrong, "joined")
        assert refusal["code"] == "invalid_grant" and "not signed" in refusal["detail"]
        trunk = await plane["http"].ws_connect(f"ws://127.0.0.1:{plane['ports']['node-jl']}/trunk")
        await trunk.send_json({"type": "trunk", "grant": grant})  # a site's grant is not a trunk's
        assert (await trunk.receive_json())["code"] == "trunk_refused"
        await wrong.close()
        await trunk.close()
        before = {site: dict(j.peer.frames) for site, j in joined.items()}
        await until(lambda: all(min(j.peer.frames[i] - before[site][i] for i in (0, 1)) >= 30
                                for site, j in joined.items()), timeout=20, what="media still flowing")
    finally:
        for j in joined.values():
            await j.close()


@pytest.mark.browser
async def test_a_killed_node_process_is_replaced_and_the_join_page_rejoins_on_its_own(plane, aiohttp_server, tmp_path):
    s = await book(plane, ["jl", "cc-nongan", "sp-lishu"], record=True)
    joined = {}
    async with async_playwright() as pw:
        browser = await launch(pw, fake_devices=True)
        try:
            for site, shade in (("jl", 40), ("sp-lishu", 200)):
                joined[site] = await join_site(plane["http"], plane["base"], s, site, SitePeer(shade))
            page = await (await browser.new_context(permissions=["camera", "microphone"])).new_page()
            await page.goto(s["join_urls"]["cc-nongan"])
            await page.click("#pattern")

            async def browser_frames() -> int:
                return await page.evaluate("window.confctlStats.framesDecoded")

            def jl_sees_nongan() -> bool:
                return bool(joined["jl"].programs) and "cc-nongan" in joined["jl"].programs[-1][1]["video"]

            await until(lambda: jl_sees_nongan() and min(joined["jl"].peer.frames.values(), default=0) >= 30,
                        timeout=40, what="the province receiving Nong'an's video from node-cc")
            await until(lambda: browser_frames(), timeout=30, what="the browser decoding the program")
            on = {x["node"] for x in (await live(plane))["sessions"] if x["session"] == s["id"]
                  for leg in x["legs"] if leg["site"] == "cc-nongan"}
            assert on == {"node-cc"}

            async def three_seconds_recorded_on_node_cc() -> bool:  # so the recording has something to keep
                return any(leg["site"] == "cc-nongan" and leg["frames_in"].get("video", 0) >= 90
                           for x in (await live(plane))["sessions"] if x["node"] == "node-cc" for leg in x["legs"])
            await until(three_seconds_recorded_on_node_cc, timeout=30, what="3 s of Nong'an's video at node-cc")
            plane["procs"]["node-cc"].kill()  # SIGKILL mid-session: no goodbye
            killed = time.monotonic()
            await until(lambda: not jl_sees_nongan(), timeout=15, what="Nong'an gone from the province's program")
            frames_then = await browser_frames()
            seen_then = dict(joined["jl"].peer.frames)

            async def flowing_again() -> bool:
                return (jl_sees_nongan() and await browser_frames() >= frames_then + 30
                        and min(joined["jl"].peer.frames[i] - seen_then[i] for i in (0, 1)) >= 30)
            await until(flowing_again, timeout=40, what="Nong'an rejoined and media flowing both ways")
            print(f"node-cc killed: Nong'an's media flowing again after {time.monotonic() - killed:.1f} s "
                  f"({await page.evaluate('window.confctlStats.rejoins')} rejoin attempts by the join page)")
            view = await live(plane)
            on = {x["node"] for x in view["sessions"] if x["session"] == s["id"]
                  for leg in x["legs"] if leg["site"] == "cc-nongan"}
            assert on == {"node-jl"}  # the parent node took it
            assert view["fallbacks"][s["id"]]["down"] == ["node-cc"]
            # A second control plane the sites never joined through tells operators the same.
            other = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=plane["db_url"],
                                                           recordings_dir=tmp_path / "rec-other")))
            r = await plane["http"].get(f"http://127.0.0.1:{other.port}/api/live",
                                        headers={"Authorization": f"Bearer {plane['tokens']['opal']}"})
            assert (await r.json())["fallbacks"] == view["fallbacks"]
            assert "node-cc is down" in await page.text_content("#notice")
            # Siping never left: its node and trunk kept flowing through the failure.
            assert joined["sp-lishu"].told == []

            async def recorded_before_the_kill() -> list:
                r = await plane["http"].get(f"{plane['base']}/api/sessions/{s['id']}/recordings",
                                            headers={"Authorization": f"Bearer {plane['tokens']['olga']}"})
                return [x for x in (await r.json())["recordings"]
                        if x["site"] == "cc-nongan" and x["kind"] == "video" and (x["duration_s"] or 0) >= 1]
            # What node-cc was writing when it died is remuxed by the control plane and listed, playable.
            assert await until(recorded_before_the_kill, timeout=20, what="Nong'an's recording from node-cc")
        finally:
            await browser.close()
            for j in joined.values():
                await j.close()


async def test_a_phone_meets_browsers_whose_session_runs_on_node_processes(plane, tmp_path):
    """baresip dials the session; the gateway's room links to the root node like a child node, so
    the phone hears Nong'an (on node-cc, two processes away) and Nong'an hears the phone."""
    s = await book(plane, ["jl", "cc-nongan", "sp"])
    nongan = await join_site(plane["http"], plane["base"], s, "cc-nongan", SitePeer(120, talking=True))
    phone = Baresip(tmp_path / "baresip", plane["sip_port"], "desk-sp", "phone-pass-1")
    await phone.dial(s["dial_in"])
    try:
        try:
            await until(lambda: nongan.peer.audio_energy > 100_000, timeout=40,
                        what="the phone's tone at Nong'an, through the gateway, node-jl and node-cc")
            await until(lambda: phone.recorded_bytes() > 48_000, timeout=20, what="baresip recording what it hears")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- baresip ---\n{phone.trace()}") from None
        view = await live(plane)
        (root,) = [x for x in view["sessions"] if x["session"] == s["id"] and x["node"] == "node-jl"]
        assert {t["child"] for t in root["trunks"] if t["connected"]} == {"node-cc", "gateway"}
    finally:
        await phone.stop()
        await nongan.close()
    assert phone.heard_rms() > 300, "baresip heard silence: Nong'an's tone did not cross the cascade"


@pytest.mark.browser
async def test_a_killed_root_node_hands_the_session_to_a_surviving_node_not_the_control_plane(plane):
    """node-jl (the root) dies: the province's page rejoins at once and is placed on node-cc, which becomes
    the session's root; Nong'an, already on node-cc, rejoins into that room. Never the control plane's own
    node while node processes run: a second control plane would not share it (islands)."""
    s = await book(plane, ["jl", "cc-nongan"])
    async with async_playwright() as pw:
        browser = await launch(pw, fake_devices=True)
        try:
            pages = {}
            for site in ("jl", "cc-nongan"):
                pages[site] = await (await browser.new_context(permissions=["camera", "microphone"])).new_page()
                await pages[site].goto(s["join_urls"][site])
                await pages[site].click("#pattern")

            async def frames() -> dict[str, int]:
                return {site: await p.evaluate("window.confctlStats.framesDecoded") for site, p in pages.items()}
            await until(lambda: frames_ok(frames, 30), timeout=40, what="both pages decoding each other")
            plane["procs"]["node-jl"].kill()
            killed = time.monotonic()
            before = await frames()

            async def flowing_again() -> bool:
                now = await frames()
                return all(now[site] >= before[site] + 60 for site in now)
            await until(flowing_again, timeout=60, what="both sites flowing again without the root node")
            print(f"root node-jl killed: both sites flowing again after {time.monotonic() - killed:.1f} s")
            view = await live(plane)
            on = {leg["site"]: x["node"] for x in view["sessions"] if x["session"] == s["id"] for leg in x["legs"]}
            assert on == {"jl": "node-cc", "cc-nongan": "node-cc"}
            assert not view["fallbacks"][s["id"]]["in_process"] and "node-jl" in view["fallbacks"][s["id"]]["down"]
            assert "node-jl" in await pages["cc-nongan"].text_content("#notice")
        finally:
            await browser.close()


async def frames_ok(frames, n: int) -> bool:
    return all(v >= n for v in (await frames()).values())


async def test_a_phone_stays_in_the_session_when_its_root_node_dies(plane, tmp_path):
    """The root node-jl dies under a live call: pages are told to rejoin, a phone cannot be. The gateway's
    branch asks the control plane where the root is now and links there, so the phone, never hung up,
    hears Nong'an again (rejoined on the new root) and Nong'an hears the phone."""
    s = await book(plane, ["jl", "cc-nongan", "sp"])
    nongan = await join_site(plane["http"], plane["base"], s, "cc-nongan", SitePeer(120, talking=True))
    phone = Baresip(tmp_path / "baresip", plane["sip_port"], "desk-sp", "phone-pass-1")
    await phone.dial(s["dial_in"])
    try:
        await until(lambda: nongan.peer.audio_energy > 100_000, timeout=40, what="the phone's tone at Nong'an")
        plane["procs"]["node-jl"].kill()
        killed = time.monotonic()
        await until(lambda: any(t.get("type") == "rejoin" for t in nongan.told), timeout=30,
                    what="Nong'an told to rejoin: the root moved")
        await nongan.close()

        async def root_down() -> bool:  # as the join page does: it rejoins until it is placed off the dead node
            r = await plane["http"].get(f"{plane['base']}/api/media-nodes",
                                        headers={"Authorization": f"Bearer {plane['tokens']['opal']}"})
            return not next(n for n in (await r.json())["nodes"] if n["id"] == "node-jl")["alive"]
        await until(root_down, timeout=30, what="node-jl judged down")
        nongan = await join_site(plane["http"], plane["base"], s, "cc-nongan", SitePeer(120, talking=True))
        heard_before = phone.recorded_bytes()
        try:
            await until(lambda: nongan.peer.audio_energy > 100_000, timeout=40,
                        what="the phone's tone at Nong'an again, through the new root")
            await until(lambda: phone.recorded_bytes() > heard_before + 48_000, timeout=20,
                        what="baresip still recording")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- baresip ---\n{phone.trace()}") from None
        print(f"root node-jl killed: the phone heard through the new root after {time.monotonic() - killed:.1f} s")
        view = await live(plane)
        roots = [x for x in view["sessions"] if x["session"] == s["id"] and x.get("trunks")]
        assert [x["node"] for x in roots] != ["node-jl"] and roots, view["sessions"]
        assert "gateway" in {t["child"] for x in roots for t in x["trunks"] if t["connected"]}
    finally:
        await phone.stop()
        await nongan.close()
