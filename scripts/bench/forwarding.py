"""Media node CPU: forwarding encoded frames vs an aiortc MediaRelay that decodes and re-encodes.

One sender replays a pre-encoded 1280x720 VP8 clip at 2 Mbit/s (encoded once
with PyAV, so the sender costs almost nothing) to N receivers (1, 4, 8)
through a node running in its own process; the node's CPU (utime+stime from
/proc) is measured over a window, first for confctl's forwarding room, then,
in the same run, for a decode+re-encode relay. Receivers count frames without
decoding. Prints both CPU figures (% of one core), the ratio, and the frame
rate each receiver got. Target: <= 6 % of one core for 1 -> 8; >= 10x cheaper.

    .venv/bin/python scripts/bench/forwarding.py [--receivers 1,4,8] [--seconds 10]

With Debian's janus installed, the same stream also goes through Janus's
videoroom (a C SFU) in the same run, as the reference: Janus binds the
machine's first non-loopback interface (it never gathers loopback candidates).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
from aiohttp import web
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from media.aiortc_hooks import install_fast_clock, raise_bitrate_caps, tap_receiver  # noqa: E402
from media.forwarding import EncodedFrame  # noqa: E402
from media.room import MediaRoom  # noqa: E402

CONFIG = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def encode_clip(seconds: int = 4, kbps: int = 2000) -> list[tuple[bytes, bool]]:
    src = av.open("testsrc2=size=1280x720:rate=30", format="lavfi")
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 1280, 720, "yuv420p"
    enc.bit_rate, enc.time_base, enc.gop_size = kbps * 1000, Fraction(1, 30), 60
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[tuple[bytes, bool]] = []
    for i, frame in enumerate(src.decode(video=0)):
        if i >= seconds * 30:
            break
        frame = frame.reformat(format="yuv420p")
        frame.pict_type = av.video.frame.PictureType.NONE  # lavfi marks every frame key otherwise
        frame.pts = i
        out += [(bytes(p), p.is_keyframe) for p in enc.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in enc.encode(None)]
    return out


class ReplayTrack(MediaStreamTrack):
    """Pre-encoded packets at real-time pace with continuous timestamps, looping on a key frame."""

    kind = "video"

    def __init__(self, clip: list[tuple[bytes, bool]]):
        super().__init__()
        self.clip, self.i, self.start = clip, 0, None

    async def recv(self) -> EncodedFrame:
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.i / 30
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        data, key = self.clip[self.i % len(self.clip)]
        frame = EncodedFrame(data, self.i * 3000, Fraction(1, 90000), key)
        self.i += 1
        return frame


# -- the node process --------------------------------------------------------------
async def serve_node(mode: str, port: int) -> None:
    raise_bitrate_caps(max_bps=2_000_000, default_bps=2_000_000)  # the relay re-encodes at the sender's rate
    install_fast_clock()  # as every media node does; the relay baseline gets it too
    room = MediaRoom("bench", "sender")
    relay = MediaRelay()
    source: list[MediaStreamTrack] = []
    pcs: list[RTCPeerConnection] = []

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        if mode == "forward":
            _, answer = await room.join(body["site"], body["sdp"])
            return web.json_response({"sdp": answer})
        pc = RTCPeerConnection(CONFIG)
        pcs.append(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                source.append(track)
        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
        if body["site"] != "sender":
            pc.addTrack(relay.subscribe(source[0]))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    app = web.Application()
    app.router.add_post("/offer", offer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- Janus, the reference ------------------------------------------------------------
class JanusClient:
    """The videoroom over Janus's HTTP API: just enough to publish one feed and subscribe to it."""

    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http, self.base, self.n = http, base, 0

    async def _post(self, path: str, body: dict) -> dict:
        self.n += 1
        async with self.http.post(f"{self.base}{path}", json={**body, "transaction": f"t{self.n}"}) as r:
            return await r.json()

    async def session(self) -> None:
        self.sid = (await self._post("/janus", {"janus": "create"}))["data"]["id"]
        self.events: dict[int, asyncio.Queue[dict]] = {}
        self.poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            async with self.http.get(f"{self.base}/janus/{self.sid}?maxev=10") as r:
                evs = await r.json()
            for ev in evs if isinstance(evs, list) else [evs]:
                if "sender" in ev:
                    self.events.setdefault(ev["sender"], asyncio.Queue()).put_nowait(ev)

    async def attach(self) -> int:
        h = (await self._post(f"/janus/{self.sid}", {"janus": "attach", "plugin": "janus.plugin.videoroom"}))["data"]["id"]
        self.events.setdefault(h, asyncio.Queue())
        return h

    async def message(self, handle: int, body: dict, jsep: dict | None = None, want_jsep: bool = False) -> dict:
        await self._post(f"/janus/{self.sid}/{handle}", {"janus": "message", "body": body, **({"jsep": jsep} if jsep else {})})
        while True:
            ev = await asyncio.wait_for(self.events[handle].get(), 20)
            if ev.get("janus") != "event":
                continue
            data = ev.get("plugindata", {}).get("data", {})
            if "error" in data:
                raise RuntimeError(f"janus: {data['error']}")
            if not want_jsep or "jsep" in ev:
                return ev

    async def close(self) -> None:
        self.poller.cancel()
        await asyncio.gather(self.poller, return_exceptions=True)


def first_interface() -> str | None:
    """The first non-loopback IPv4 interface (Janus's ice_enforce_list)."""
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts[1] != "lo":
            return parts[1]
    return None


async def run_janus(receivers: int, clip: list[tuple[bytes, bool]], seconds: float) -> dict[str, float] | None:
    iface = shutil.which("janus") and first_interface()
    if not iface:
        return None
    work = Path(tempfile.mkdtemp(prefix="confctl-janus-"))
    port = free_port()
    for f in (HERE / "janus").glob("*.jcfg"):
        (work / f.name).write_text(f.read_text().replace("CONFIG_DIR", str(work)).replace("ICE_INTERFACE", iface)
                                   .replace("HTTP_PORT", str(port)))
    janus = subprocess.Popen(["janus", "-F", str(work), "-C", str(work / "janus.jcfg"), "-L", str(work / "janus.log"),
                              "-N", "-o"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pcs: list[RTCPeerConnection] = []
    counts: list[list[int]] = []
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:  # until Janus answers (polling with a deadline)
                try:
                    async with http.get(f"{base}/janus/info") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("janus did not start")
                await asyncio.sleep(0.2)
            jc = JanusClient(http, base)
            await jc.session()
            try:
                return await _janus_case(jc, receivers, clip, seconds, janus, pcs, counts)
            finally:
                await jc.close()
    finally:
        for pc in pcs:
            await pc.close()
        janus.terminate()
        janus.wait()


async def _janus_case(jc: JanusClient, receivers: int, clip: list[tuple[bytes, bool]], seconds: float,
                      janus: subprocess.Popen, pcs: list[RTCPeerConnection], counts: list[list[int]]) -> dict[str, float]:
    pub = await jc.attach()
    joined = await jc.message(pub, {"request": "join", "ptype": "publisher", "room": 1234})
    feed = joined["plugindata"]["data"]["id"]
    pc = RTCPeerConnection(CONFIG)
    pcs.append(pc)
    pc.addTransceiver(ReplayTrack(clip), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    ev = await jc.message(pub, {"request": "configure", "audio": False, "video": True},
                          {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False}, want_jsep=True)
    await pc.setRemoteDescription(RTCSessionDescription(ev["jsep"]["sdp"], "answer"))
    for _ in range(receivers):
        h = await jc.attach()
        deadline = time.monotonic() + 20
        while True:  # Janus refuses subscribers until the feed's first packets arrive: poll with a deadline
            try:
                ev = await jc.message(h, {"request": "join", "ptype": "subscriber", "room": 1234, "feed": feed},
                                      want_jsep=True)
                break
            except RuntimeError as exc:
                if "No such feed" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        sub = RTCPeerConnection(CONFIG)
        pcs.append(sub)
        counter = [0]
        counts.append(counter)

        @sub.on("track")
        def on_track(track: MediaStreamTrack, sub: RTCPeerConnection = sub, counter: list[int] = counter) -> None:
            receiver = next(t.receiver for t in sub.getTransceivers() if t.receiver.track is track)
            tap_receiver(receiver, lambda c, f: counter.__setitem__(0, counter[0] + 1))  # count, never decode
        await sub.setRemoteDescription(RTCSessionDescription(ev["jsep"]["sdp"], "offer"))
        await sub.setLocalDescription(await sub.createAnswer())
        await jc.message(h, {"request": "start", "room": 1234},
                         {"type": "answer", "sdp": sub.localDescription.sdp, "trickle": False})
    deadline = time.monotonic() + 30
    while not all(c[0] > 30 for c in counts):
        if time.monotonic() > deadline:
            raise RuntimeError(f"janus receivers stalled: {[c[0] for c in counts]}")
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # settle past start-up, as for the other cases
    c0, f0, t0 = cpu_ticks(janus.pid), [c[0] for c in counts], time.monotonic()
    await asyncio.sleep(seconds)
    c1, f1, t1 = cpu_ticks(janus.pid), [c[0] for c in counts], time.monotonic()
    return {"cpu": 100 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0),
            "fps": min(b - a for a, b in zip(f0, f1)) / (t1 - t0)}


# -- the driver ----------------------------------------------------------------------
def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_case(mode: str, receivers: int, clip: list[tuple[bytes, bool]], seconds: float) -> dict[str, float]:
    port = free_port()
    node = subprocess.Popen([sys.executable, __file__, "--serve-node", mode, str(port)], stdout=subprocess.PIPE, text=True)
    assert node.stdout is not None and node.stdout.readline().strip() == "ready"
    pcs: list[RTCPeerConnection] = []
    counts: list[list[int]] = []
    try:
        async with aiohttp.ClientSession() as http:
            async def connect(site: str, send: bool) -> None:
                pc = RTCPeerConnection(CONFIG)
                pcs.append(pc)
                pc.addTransceiver("audio", direction="recvonly")
                if send:
                    pc.addTransceiver(ReplayTrack(clip), direction="sendonly")
                else:
                    pc.addTransceiver("video", direction="recvonly")
                    counter = [0]
                    counts.append(counter)

                    @pc.on("track")
                    def on_track(track: MediaStreamTrack) -> None:
                        if track.kind == "video":
                            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
                            tap_receiver(receiver, lambda c, f: counter.__setitem__(0, counter[0] + 1))  # count, never decode
                await pc.setLocalDescription(await pc.createOffer())
                r = await http.post(f"http://127.0.0.1:{port}/offer", json={"site": site, "sdp": pc.localDescription.sdp})
                await pc.setRemoteDescription(RTCSessionDescription((await r.json())["sdp"], "answer"))

            await connect("sender", True)
            for i in range(receivers):
                await connect(f"r{i}", False)
            deadline = time.monotonic() + 30
            while not all(c[0] > 30 for c in counts):  # every receiver is getting frames
                if time.monotonic() > deadline:
                    raise RuntimeError(f"receivers stalled: {[c[0] for c in counts]}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # settle past start-up (key frames, bitrate ramp)
            c0, f0, t0 = cpu_ticks(node.pid), [c[0] for c in counts], time.monotonic()
            await asyncio.sleep(seconds)
            c1, f1, t1 = cpu_ticks(node.pid), [c[0] for c in counts], time.monotonic()
        cpu = 100 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
        fps = min(b - a for a, b in zip(f0, f1)) / (t1 - t0)
        return {"cpu": cpu, "fps": fps}
    finally:
        for pc in pcs:
            await pc.close()
        node.terminate()
        node.wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--receivers", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--serve-node", nargs=2, metavar=("MODE", "PORT"))
    args = ap.parse_args()
    if args.serve_node:
        await serve_node(args.serve_node[0], int(args.serve_node[1]))
        return
    clip = encode_clip()
    rate = sum(len(d) for d, _ in clip) * 8 / (len(clip) / 30) / 1e6
    print(f"clip: {len(clip)} frames 1280x720 VP8, {rate:.2f} Mbit/s; window {args.seconds:g} s per case")
    print(f"{'receivers':>9} {'forward %core':>14} {'fps':>5} {'relay %core':>12} {'fps':>5} {'relay/forward':>14}"
          f" {'janus %core':>12} {'fps':>5} {'forward/janus':>14}")
    for n in [int(x) for x in args.receivers.split(",")]:
        fwd = await run_case("forward", n, clip, args.seconds)
        rel = await run_case("relay", n, clip, args.seconds)
        ratio = rel["cpu"] / fwd["cpu"] if fwd["cpu"] else float("inf")
        try:
            jan = await run_janus(n, clip, args.seconds)
        except Exception as exc:  # the reference is optional: say why it is missing, keep our figures
            print(f"  (janus: {exc})", file=sys.stderr)
            jan = None
        janus_cols = (f" {jan['cpu']:>12.1f} {jan['fps']:>5.1f} {fwd['cpu'] / jan['cpu']:>13.1f}x" if jan and jan["cpu"]
                      else f" {'-':>12} {'-':>5} {'-':>14}")
        print(f"{n:>9} {fwd['cpu']:>14.1f} {fwd['fps']:>5.1f} {rel['cpu']:>12.1f} {rel['fps']:>5.1f} {ratio:>13.1f}x"
              + janus_cols, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
