"""A control plane with `confctl media-node` processes registered: the helpers the process tests share."""
from __future__ import annotations

import asyncio
import socket
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from media.contracts.browser import Join, Offer
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import next_of, token_of

CONFCTL = str(Path(sys.executable).parent / "confctl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(base: str, token: str, node_id: str, recordings: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([CONFCTL, "media-node", "--control", base, "--id", node_id,
                             "--port", str(port), "--recordings", str(recordings)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CONFCTL_NODE_TOKEN": token})
    return proc, port


async def wait_registered(http: aiohttp.ClientSession, base: str, operator: str, procs: dict[str, subprocess.Popen]):
    async def all_alive() -> bool:
        for nid, p in procs.items():
            assert p.poll() is None, f"{nid} exited: {p.stderr.read() if p.stderr else ''}"
        r = await http.get(f"{base}/api/media-nodes", headers={"Authorization": f"Bearer {operator}"})
        alive = {n["id"] for n in (await r.json())["nodes"] if n["alive"] and not n["in_process"]}
        return set(procs) <= alive
    await until(all_alive, timeout=40, what=f"node processes {sorted(procs)} registered")


def now8() -> datetime:
    return datetime.now(timezone(timedelta(hours=8)))


@dataclass
class JoinedSite:
    """A SitePeer joined through the control plane (following its redirect), with what it was told."""
    site: str
    peer: SitePeer
    ws: Any = None
    node_url: str = ""
    programs: list[tuple[float, dict]] = field(default_factory=list)
    told: list[dict] = field(default_factory=list)  # notices and rejoin requests
    reader: asyncio.Task | None = None

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()
        await self.peer.close()


async def join_site(http: aiohttp.ClientSession, base: str, session: dict, site: str, peer: SitePeer) -> JoinedSite:
    j = JoinedSite(site, peer)
    cp = await http.ws_connect(f"{base}/ws")
    await cp.send_str(Join(token=token_of(session, site)).model_dump_json())
    redirect = await next_of(cp, "redirect")
    await cp.close()
    assert redirect["type"] == "redirect", redirect
    j.node_url = redirect["url"]
    j.ws = await http.ws_connect(redirect["url"])
    await j.ws.send_str(Join(grant=redirect["grant"]).model_dump_json())
    joined = await next_of(j.ws, "joined")
    assert joined["type"] == "joined", joined
    await j.ws.send_str(Offer(sdp=await peer.offer()).model_dump_json())
    await peer.accept((await next_of(j.ws, "answer"))["sdp"])

    async def read() -> None:
        loop = asyncio.get_running_loop()
        async for raw in j.ws:
            msg = raw.json()
            if msg["type"] == "program":
                j.programs.append((loop.time(), msg))
            elif msg["type"] in ("rejoin", "error"):
                j.told.append(msg)
    j.reader = asyncio.create_task(read())
    return j


async def wait_serving(http: aiohttp.ClientSession, base: str, proc: subprocess.Popen | None = None,
                       ssl: Any = None) -> None:
    """Until `confctl serve` at `base` answers /api/health (failing at once if its process `proc` exited)."""
    async def up() -> bool:
        if proc is not None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else f"exited {proc.returncode}"
        try:
            async with http.get(f"{base}/api/health", ssl=ssl) as r:
                return r.status == 200
        except aiohttp.ClientConnectorError:
            return False
    await until(up, timeout=30, what=f"confctl serve answering at {base}")
