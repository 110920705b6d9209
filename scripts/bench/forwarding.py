"""Media node CPU in a realistic room, against Janus (a C SFU) forwarding the same streams in the same run.

The room: two publishing sites, the host and the speaker, each sending a
pre-encoded 1280x720 VP8 clip at 2 Mbit/s (encoded once with PyAV) and Opus
audio (the host silence, the speaker a tone, so the speaker is elected); N
receiving sites (1, 4, 8) each get the program: 2 video + 1 audio, as every
site of a real session does. The node runs in its own process; its CPU
(utime+stime from /proc) is measured over a window. Janus's videoroom gets
the same publishers, and each of its subscribers takes the host's video, the
speaker's video and the speaker's audio (multistream `streams`). Every case
runs --repeat times (3), alternating confctl and Janus, and the median is
printed with the ratio. Receivers count frames without decoding.

Janus is the reference this must run against: without Debian's janus
(apt-get install janus) the bench says so and stops. Janus never gathers
loopback candidates, so it binds the machine's first non-loopback interface.

    .venv/bin/python scripts/bench/forwarding.py [--receivers 1,4,8] [--seconds 10] [--repeat 3]
"""
from __future__ import annotations

import argparse
import array
import asyncio
import math
import os
import shutil
import socket
import subprocess
import sys
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
from aiohttp import web
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
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


class ToneTrack(MediaStreamTrack):
    """20 ms of 48 kHz audio at real-time pace: a tone for the speaker, silence for the host.
    aiortc encodes it (Opus) in this driver process and marks its level (RFC 6464)."""

    kind = "audio"

    def __init__(self, loud: bool):
        super().__init__()
        self.i, self.start = 0, None
        tone = [int(9000 * math.sin(2 * math.pi * 440 * n / 48000)) for n in range(960)]  # 20 ms: whole periods
        self.pcm = array.array("h", tone if loud else [0] * 960).tobytes()

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + self.i * 0.02 - time.monotonic()))
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self.pcm)
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.i * 960, Fraction(1, 48000)
        self.i += 1
        return frame


def publisher_pc(clip: list[tuple[bytes, bool]], loud: bool) -> RTCPeerConnection:
    pc = RTCPeerConnection(CONFIG)
    pc.addTransceiver(ToneTrack(loud), direction="sendonly")
    pc.addTransceiver(ReplayTrack(clip), direction="sendonly")
    return pc


def receivers_skip_header_extensions() -> None:
    """The driver's receivers stand in for browsers, which read RTP header extensions (and feed their
    bandwidth estimate from them) in C++. In this one Python process, for up to 144 streams, that
    parse alone would cost about what a server's forwarding does, and once the driver falls behind
    every server resends to it. So the driver's aiortc skips them; both servers still negotiate and
    write them."""
    import aiortc.rtp
    aiortc.rtp.HeaderExtensionsMap.get = lambda self, profile, value: aiortc.rtp.HeaderExtensions()  # type: ignore


def counting_receiver(pc: RTCPeerConnection, counters: dict[str, list[int]]) -> None:
    """Count what arrives per kind (frames for video, packets' frames for audio), never decoding."""
    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
        counter = [0]
        counters.setdefault(track.kind, []).append(counter)
        tap_receiver(receiver, lambda c, f: counter.__setitem__(0, counter[0] + 1))


# -- the node process --------------------------------------------------------------
async def serve_node(port: int) -> None:
    raise_bitrate_caps(max_bps=2_000_000, default_bps=2_000_000)
    install_fast_clock()  # as every media node does
    room = MediaRoom("bench", "host")

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        _, answer = await room.join(body["site"], body["sdp"])
        return web.json_response({"sdp": answer})

    app = web.Application()
    app.router.add_post("/offer", offer)
    await serve_forever(app, port)


async def serve_forever(app: web.Application, port: int) -> None:
    """A bench node process: serve on loopback, say ready to the driver on stdout, run until killed."""
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


def sdp_mids(sdp: str) -> dict[str, str]:
    """kind -> mid of each m-section of an SDP (the publisher's own, for Janus's `streams`)."""
    out: dict[str, str] = {}
    kind = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            kind = line[2:].split()[0]
        elif line.startswith("a=mid:") and kind and kind not in out:
            out[kind] = line[6:].strip()
    return out


async def measure(pid: int, counters: dict[str, list[list[int]]], receivers: int, seconds: float) -> dict[str, float]:
    """Wait until every receiver gets both videos and the audio, settle, then CPU and rates over the window."""
    deadline = time.monotonic() + 40
    def flowing() -> bool:
        video, audio = counters.get("video", []), counters.get("audio", [])
        return (len(video) >= 2 * receivers and len(audio) >= receivers and all(c[0] > 30 for c in video)
                and all(c[0] > 20 for c in audio))
    while not flowing():
        if time.monotonic() > deadline:
            raise RuntimeError(f"receivers stalled: { {k: [c[0] for c in v] for k, v in counters.items()} }")
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # settle past start-up (key frames, bitrate ramp)
    c0, f0, t0 = cpu_ticks(pid), [c[0] for c in counters["video"]], time.monotonic()
    await asyncio.sleep(seconds)
    c1, f1, t1 = cpu_ticks(pid), [c[0] for c in counters["video"]], time.monotonic()
    return {"cpu": 100 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0),
            "fps": min(b - a for a, b in zip(f0, f1)) / (t1 - t0), "rss": rss_mib(pid)}


def rss_mib(pid: int) -> float:
    """The server's resident memory now, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_janus(receivers: int, clip: list[tuple[bytes, bool]], seconds: float, iface: str) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="confctl-janus-"))
    port = free_port()
    for f in (HERE / "janus").glob("*.jcfg"):
        (work / f.name).write_text(f.read_text().replace("CONFIG_DIR", str(work)).replace("ICE_INTERFACE", iface)
                                   .replace("HTTP_PORT", str(port)))
    janus = subprocess.Popen(server_cmd(["janus", "-F", str(work), "-C", str(work / "janus.jcfg"),
                                         "-L", str(work / "janus.log"), "-N", "-o"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pcs: list[RTCPeerConnection] = []
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
                return await _janus_case(jc, receivers, clip, seconds, janus, pcs)
            finally:
                await jc.close()
    finally:
        for pc in pcs:
            await pc.close()
        janus.terminate()
        janus.wait()


async def _janus_publish(jc: JanusClient, clip: list[tuple[bytes, bool]], loud: bool,
                         pcs: list[RTCPeerConnection]) -> tuple[int, dict[str, str]]:
    handle = await jc.attach()
    joined = await jc.message(handle, {"request": "join", "ptype": "publisher", "room": 1234})
    pc = publisher_pc(clip, loud)
    pcs.append(pc)
    await pc.setLocalDescription(await pc.createOffer())
    ev = await jc.message(handle, {"request": "configure", "audio": True, "video": True},
                          {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False}, want_jsep=True)
    await pc.setRemoteDescription(RTCSessionDescription(ev["jsep"]["sdp"], "answer"))
    return joined["plugindata"]["data"]["id"], sdp_mids(pc.localDescription.sdp)


async def _janus_case(jc: JanusClient, receivers: int, clip: list[tuple[bytes, bool]], seconds: float,
                      janus: subprocess.Popen, pcs: list[RTCPeerConnection]) -> dict[str, float]:
    host, host_mids = await _janus_publish(jc, clip, False, pcs)
    speaker, speaker_mids = await _janus_publish(jc, clip, True, pcs)
    program = [{"feed": host, "mid": host_mids["video"]}, {"feed": speaker, "mid": speaker_mids["video"]},
               {"feed": speaker, "mid": speaker_mids["audio"]}]  # 2 video + 1 audio, as confctl's program
    counters: dict[str, list[list[int]]] = {}
    for _ in range(receivers):
        h = await jc.attach()
        deadline = time.monotonic() + 20
        while True:  # Janus refuses subscribers until the feeds' first packets arrive: poll with a deadline
            try:
                ev = await jc.message(h, {"request": "join", "ptype": "subscriber", "room": 1234, "streams": program},
                                      want_jsep=True)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        sub = RTCPeerConnection(CONFIG)
        pcs.append(sub)
        counting_receiver(sub, counters)
        await sub.setRemoteDescription(RTCSessionDescription(ev["jsep"]["sdp"], "offer"))
        await sub.setLocalDescription(await sub.createAnswer())
        await jc.message(h, {"request": "start", "room": 1234},
                         {"type": "answer", "sdp": sub.localDescription.sdp, "trickle": False})
    return await measure(janus.pid, counters, receivers, seconds)


# -- the driver ----------------------------------------------------------------------
def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# On a machine with two cores or more the server under test runs on its own core and this driver (the
# senders and receivers) on another: sharing one, the server's cost per packet falls whenever the
# driver delays it (more packets per wakeup), and runs of the same case differed by half (10 vs 16 %).
PINNED = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
SERVER_CPU, DRIVER_CPU = "1", 0


def server_cmd(cmd: list[str]) -> list[str]:
    """The server's command line, on its own core when the machine has one to spare."""
    return ["taskset", "-c", SERVER_CPU, *cmd] if PINNED else cmd


def pin_driver() -> None:
    if PINNED:
        os.sched_setaffinity(0, {DRIVER_CPU})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def offer_to(http: aiohttp.ClientSession, port: int, site: str, pc: RTCPeerConnection,
                   pcs: list[RTCPeerConnection]) -> None:
    """Join a site to a bench node process over its /offer endpoint."""
    pcs.append(pc)
    await pc.setLocalDescription(await pc.createOffer())
    r = await http.post(f"http://127.0.0.1:{port}/offer", json={"site": site, "sdp": pc.localDescription.sdp})
    await pc.setRemoteDescription(RTCSessionDescription((await r.json())["sdp"], "answer"))


def receiver_pc(counters: dict[str, list[list[int]]]) -> RTCPeerConnection:
    """A receiving site: the program's audio and two videos, counted, never decoded."""
    pc = RTCPeerConnection(CONFIG)
    pc.addTransceiver("audio", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")
    counting_receiver(pc, counters)
    return pc


def start_node(frames: bool, python_rtp: bool = False) -> tuple[subprocess.Popen, int]:
    """A confctl node process on its own core, ready: forwarding at the RTP level in C, or through
    its Python specification (`python_rtp`), or (`frames`) through aiortc's frame path. Returns it
    and its port."""
    port = free_port()
    env = {**os.environ, "CONFCTL_FRAME_FORWARDING": "1" if frames else "", "CONFCTL_PYTHON_RTP": "1" if python_rtp else ""}
    node = subprocess.Popen(server_cmd([sys.executable, __file__, "--serve-node", str(port)]), stdout=subprocess.PIPE,
                            text=True, env=env)
    assert node.stdout is not None and node.stdout.readline().strip() == "ready"
    return node, port


async def run_case(receivers: int, clip: list[tuple[bytes, bool]], seconds: float, frames: bool = False,
                   python_rtp: bool = False) -> dict[str, float]:
    """confctl's node: forwarding at the RTP level (in C, or in Python), or (`frames`) through aiortc's
    frame path."""
    node, port = start_node(frames, python_rtp)
    pcs: list[RTCPeerConnection] = []
    counters: dict[str, list[list[int]]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            await offer_to(http, port, "host", publisher_pc(clip, False), pcs)
            await offer_to(http, port, "speaker", publisher_pc(clip, True), pcs)
            for i in range(receivers):
                await offer_to(http, port, f"r{i}", receiver_pc(counters), pcs)
            return await measure(node.pid, counters, receivers, seconds)
    finally:
        for pc in pcs:
            await pc.close()
        node.terminate()
        node.wait()


def runs(results: list[dict[str, float]]) -> str:
    return "/".join(f"{r['cpu']:.1f}" for r in results)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--receivers", default="1,4,8")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="runs per case and server; the median is printed")
    ap.add_argument("--serve-node", metavar="PORT")
    args = ap.parse_args()
    if args.serve_node:
        await serve_node(int(args.serve_node))
        return
    iface = first_interface()
    if not shutil.which("janus"):
        sys.exit("forwarding bench: Janus is the reference this is measured against and it is not installed: "
                 "apt-get install janus")
    if not iface:
        sys.exit("forwarding bench: Janus needs a non-loopback interface to gather candidates on; none is up")
    pin_driver()
    receivers_skip_header_extensions()
    clip = encode_clip()
    rate = sum(len(d) for d, _ in clip) * 8 / (len(clip) / 30) / 1e6
    print(f"room: host + speaker each send {len(clip)}-frame 1280x720 VP8 at {rate:.2f} Mbit/s and Opus; each receiver "
          f"gets 2 video + 1 audio; window {args.seconds:g} s; median of {args.repeat} alternating runs"
          + ("; the server on core 1, this driver on core 0" if PINNED else ""))
    print("confctl forwards at the RTP level, each packet's rewrite, SRTP and send in C (media/native_output.c); "
          "'python' is the same path in Python (media/rtp_output.py, CONFCTL_PYTHON_RTP=1); 'frames' its former "
          "path through aiortc's packetizer (CONFCTL_FRAME_FORWARDING=1), the baseline")
    print(f"{'receivers':>9} {'confctl %core':>14} {'fps':>5} {'python %core':>13} {'frames %core':>13} "
          f"{'janus %core':>12} {'fps':>5} {'confctl/janus':>14} {'confctl/python':>15} {'confctl/frames':>15}   runs")
    for n in [int(x) for x in args.receivers.split(",")]:
        ours: list[dict[str, float]] = []
        python: list[dict[str, float]] = []
        before: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for _ in range(args.repeat):  # alternating, so drift on this noisy machine hits all alike
            ours.append(await run_case(n, clip, args.seconds))
            python.append(await run_case(n, clip, args.seconds, python_rtp=True))
            before.append(await run_case(n, clip, args.seconds, frames=True))
            theirs.append(await run_janus(n, clip, args.seconds, iface))
        mine, py, old, ref = (statistics.median(r["cpu"] for r in x) for x in (ours, python, before, theirs))
        fps_m, fps_r = min(r["fps"] for r in ours), min(r["fps"] for r in theirs)
        print(f"{n:>9} {mine:>14.1f} {fps_m:>5.1f} {py:>13.1f} {old:>13.1f} {ref:>12.1f} {fps_r:>5.1f} "
              f"{mine / ref:>13.2f}x {mine / py:>14.2f}x {mine / old:>14.2f}x   (confctl {runs(ours)}; "
              f"python {runs(python)}; frames {runs(before)}; janus {runs(theirs)})", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
