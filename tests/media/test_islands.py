"""One session, one connected room: whatever order node processes start, die and come back in, the sites of
a session decode each other within 10 s of the last change (the join page's rejoin behaviour, in Python)."""
from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.node_processes import now8, start_node, wait_registered
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import token_of

RECOVERY_S = 10.0


@dataclass
class RejoiningSite:
    """A site as the join page behaves: joins through the control plane, follows its redirect, and joins
    again through the control plane when told to or when its node connection drops."""
    http: aiohttp.ClientSession
    base: str
    session: dict
    site: str
    shade: int
    peer: SitePeer | None = None
    where: str = ""
    joins: int = 0
    last_frame: float = 0.0
    _task: asyncio.Task | None = None
    _counted: dict[int, int] = field(default_factory=dict)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def decoding_since(self, t: float) -> bool:
        """Frames of the other site decoded after `t`."""
        self._note()
        return self.last_frame > t

    def _note(self) -> None:
        if self.peer is not None and any(n > self._counted.get(i, 0) for i, n in self.peer.frames.items()):
            self._counted = dict(self.peer.frames)
            self.last_frame = time.monotonic()

    async def _run(self) -> None:
        while True:
            try:
                await self._once()
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, KeyError):
                pass  # the node went away mid-join: as the page does, again through the control plane
            await asyncio.sleep(0.5)  # the page's back-off before rejoining

    async def _once(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        self.peer, self._counted = SitePeer(self.shade), {}
        self.joins += 1
        ws = await self.http.ws_connect(f"{self.base}/ws")
        try:
            await ws.send_json({"type": "join", "token": token_of(self.session, self.site)})
            first = await _next(ws, ("joined", "redirect", "error"))
            if first["type"] == "redirect":
                await ws.close()
                ws = await self.http.ws_connect(first["url"])
                self.where = first["url"]
                await ws.send_json({"type": "join", "grant": first["grant"]})
                first = await _next(ws, ("joined", "error"))
            else:
                self.where = "in-process"
            if first["type"] != "joined":
                return
            await ws.send_json({"type": "offer", "sdp": await self.peer.offer()})
            answer = await _next(ws, ("answer", "error"))
            if answer["type"] != "answer":
                return
            await self.peer.accept(answer["sdp"])
            while True:  # until the node says rejoin or the connection ends
                msg = await _receive(ws, self)
                if msg is None or msg.get("type") in ("rejoin", "ended"):
                    return
        finally:
            await ws.close()

    async def reload(self) -> None:
        """The technician reloads the page: a new join through the control plane."""
        await self.close()
        self.start()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.peer is not None:
            await self.peer.close()


async def _receive(ws: Any, site: RejoiningSite) -> dict | None:
    while True:
        try:
            raw = await ws.receive(timeout=0.5)
        except asyncio.TimeoutError:
            site._note()
            if site.peer is not None and site.peer.pc.connectionState in ("failed", "closed"):
                return None  # the page rejoins when its media connection fails
            continue
        if raw.type != aiohttp.WSMsgType.TEXT:
            return None
        return raw.json()


async def _next(ws: Any, kinds: tuple[str, ...]) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), 10)
        if msg["type"] in kinds:
            return msg


@pytest.fixture
async def plane(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/islands.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    recordings_dir=tmp_path / "rec")))
    nodes = ("node-jl", "node-cc", "node-sp")
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None),
                             *((n, Role.NODE, None) for n in nodes)])
    base = f"http://127.0.0.1:{server.port}"
    procs: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        async def start(*ids: str) -> None:
            for nid in ids:
                procs[nid] = start_node(base, tokens[nid], nid, tmp_path / "rec")[0]
            await wait_registered(http, base, tokens["opal"], {n: procs[n] for n in ids})

        async def kill(nid: str) -> None:
            procs[nid].send_signal(signal.SIGKILL)
            procs[nid].wait(timeout=10)

            async def down() -> bool:
                r = await http.get(f"{base}/api/media-nodes", headers={"Authorization": f"Bearer {tokens['opal']}"})
                return not any(n["id"] == nid and n["alive"] for n in (await r.json())["nodes"] if not n["in_process"])
            await until(down, timeout=15, what=f"{nid} taken for down")

        async def book(sites: list[str]) -> dict:
            start_at = now8()
            r = await http.post(f"{base}/api/sessions", headers={"Authorization": f"Bearer {tokens['olga']}"}, json={
                "title": "Islands", "host_site": sites[0], "sites": sites[1:], "start": start_at.isoformat(),
                "end": (start_at + timedelta(hours=1)).isoformat(), "profile": "sd", "plan": "cascade"})
            assert r.status == 201, await r.text()
            return await r.json()
        try:
            yield {"http": http, "base": base, "start": start, "kill": kill, "book": book}
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
            for p in procs.values():
                p.wait(timeout=10)


async def _all_decode(sites: list[RejoiningSite], since: float, what: str) -> float:
    await until(lambda: all(s.decoding_since(since) for s in sites), timeout=RECOVERY_S,
                what=f"every site decoding within {RECOVERY_S:.0f} s of {what} "
                     f"(at {[(s.site, s.where, s.joins) for s in sites]})")
    return time.monotonic() - since


async def _join(plane, session: dict, names: list[str]) -> list[RejoiningSite]:
    sites = [RejoiningSite(plane["http"], plane["base"], session, name, 60 + 70 * i) for i, name in enumerate(names)]
    for s in sites:
        s.start()
    return sites


async def test_two_sites_nodes_registering_while_the_first_joins_meet_in_one_room(plane):
    session = await plane["book"](["jl", "cc-nongan"])
    sites = await _join(plane, session, ["jl"])  # no node process yet: on the control plane's own node
    try:
        await until(lambda: sites[0].where == "in-process", what="jl joined in-process")
        await plane["start"]("node-jl", "node-cc")
        sites += await _join(plane, session, ["cc-nongan"])
        took = await _all_decode(sites, time.monotonic(), "the nodes registering mid-join")
        print(f"nodes up mid-join: both sites decode each other {took:.1f} s later, at {[s.where for s in sites]}")
        assert all(s.where != "in-process" for s in sites)  # jl moved to its node: one room, not two
    finally:
        for s in sites:
            await s.close()


async def test_two_sites_recover_when_their_prefecture_node_dies_and_when_it_returns(plane):
    await plane["start"]("node-jl", "node-cc")
    session = await plane["book"](["jl", "cc-nongan"])
    sites = await _join(plane, session, ["jl", "cc-nongan"])
    try:
        await _all_decode(sites, time.monotonic(), "joining")
        assert all(s.where != "in-process" for s in sites)  # on node-jl and node-cc, linked by a trunk
        await plane["kill"]("node-cc")
        took = await _all_decode(sites, time.monotonic(), "node-cc taken for down")
        print(f"node-cc killed: both decode {took:.1f} s after it was taken for down")
        await plane["start"]("node-cc")
        took = await _all_decode(sites, time.monotonic(), "node-cc back")
        print(f"node-cc back: both decode {took:.1f} s later")
    finally:
        for s in sites:
            await s.close()


async def test_three_sites_nodes_after_joining_then_a_child_dies(plane):
    session = await plane["book"](["jl", "cc-nongan", "sp-lishu"])
    sites = await _join(plane, session, ["jl", "cc-nongan", "sp-lishu"])  # all on the control plane's node
    try:
        await _all_decode(sites, time.monotonic(), "joining in-process")
        await plane["start"]("node-jl", "node-cc", "node-sp")
        await sites[2].reload()  # Siping reloads its page: it goes to node-sp, the others must follow
        took = await _all_decode(sites, time.monotonic(), "the nodes registering after everyone joined")
        await until(lambda: all(s.where != "in-process" for s in sites), what="every site on the node processes")
        print(f"nodes up after joining: all three decode {took:.1f} s later, at {[s.where for s in sites]}")
        await plane["kill"]("node-sp")
        took = await _all_decode(sites, time.monotonic(), "node-sp taken for down")
        print(f"node-sp killed: all three decode {took:.1f} s later, at {[s.where for s in sites]}")
    finally:
        for s in sites:
            await s.close()


async def test_three_sites_on_three_nodes_recover_when_the_root_dies(plane):
    # node-jl (the root) dies: node-cc becomes the root (placement.py), and node-sp, a child, must stop
    # dialling the dead root and bring its site into the session's new root (media/node.py place()).
    await plane["start"]("node-jl", "node-cc", "node-sp")
    session = await plane["book"](["jl", "cc-nongan", "sp-lishu"])
    sites = await _join(plane, session, ["jl", "cc-nongan", "sp-lishu"])
    try:
        await _all_decode(sites, time.monotonic(), "joining")
        await plane["kill"]("node-jl")
        took = await _all_decode(sites, time.monotonic(), "the root node-jl taken for down")
        print(f"root killed: all three decode {took:.1f} s later, at {[s.where for s in sites]}")
        for s in sites:
            await s.reload()  # the page reloaded later lands in the same connected session
        took = await _all_decode(sites, time.monotonic(), "every page reloaded")
    finally:
        for s in sites:
            await s.close()
