"""Synthetic HD streams one core sustains: replaying pre-encoded frames vs aiortc encoding live, same run.

A sender process serves N 720p streams at 2 Mbit/s (VP8, 30 fps) to N receivers in this
process, which count frames without decoding. Its CPU (utime+stime from /proc) over a
window gives the cost of one stream, and so the streams one core sustains:
- replay: media/synthetic.py's clip, encoded once, handed to aiortc as encoded frames;
- encode: aiortc's own VP8 encoder on raw frames (pre-made, so only encoding is measured).
The target: replay >= 20 streams per core and >= 10x the encoding sender.

    .venv/bin/python scripts/bench/sources.py [--replay 12] [--encode 2] [--seconds 10]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import av
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from forwarding import cpu_ticks, free_port, serve_forever  # noqa: E402
from media.aiortc_hooks import on_keyframe_request, raise_bitrate_caps, tap_receiver  # noqa: E402
from media.synthetic import ReplayVideo, _pattern, video_clip  # noqa: E402

CONFIG = RTCConfiguration(iceServers=[])
W, H, KBPS, FPS = 1280, 720, 2000, 30


class RawFrames(VideoStreamTrack):
    """Raw 720p frames made once (a second's worth), for aiortc's encoder to encode live."""

    def __init__(self, frames: list[av.VideoFrame]):
        super().__init__()
        self.frames, self.i = frames, 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self.frames[self.i % len(self.frames)]
        self.i += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


def raw_frames() -> list[av.VideoFrame]:
    out = []
    for i in range(FPS):
        f = av.VideoFrame(W, H, "yuv420p")
        f.planes[0].update(_pattern(W, H, i, FPS).tobytes())
        f.planes[1].update(b"\x80" * f.planes[1].buffer_size)
        f.planes[2].update(b"\x80" * f.planes[2].buffer_size)
        out.append(f)
    return out


async def serve_sender(port: int, mode: str) -> None:
    raise_bitrate_caps(max_bps=KBPS * 1000, default_bps=KBPS * 1000)
    clip = video_clip(W, H, KBPS) if mode == "replay" else None
    raw = raw_frames() if mode == "encode" else None
    pcs: list[RTCPeerConnection] = []

    async def offer(request: web.Request) -> web.Response:
        pc = RTCPeerConnection(CONFIG)
        pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription((await request.json())["sdp"], "offer"))
        track = ReplayVideo(clip) if clip is not None else RawFrames(raw)  # type: ignore[arg-type]
        sender = pc.addTrack(track)
        if isinstance(track, ReplayVideo):
            on_keyframe_request(sender, track.request_keyframe)
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    app = web.Application()
    app.router.add_post("/offer", offer)
    await serve_forever(app, port)


async def run(mode: str, streams: int, seconds: float) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    pcs: list[RTCPeerConnection] = []
    counts: list[list[int]] = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(streams):
                pc = RTCPeerConnection(CONFIG)
                pcs.append(pc)
                pc.addTransceiver("video", direction="recvonly")
                counter = [0]
                counts.append(counter)

                @pc.on("track")
                def on_track(track, pc=pc, counter=counter) -> None:  # type: ignore[no-untyped-def]
                    receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
                    tap_receiver(receiver, lambda c, f, counter=counter: counter.__setitem__(0, counter[0] + 1))
                await pc.setLocalDescription(await pc.createOffer())
                async with http.post(f"http://127.0.0.1:{port}/offer", json={"sdp": pc.localDescription.sdp}) as r:
                    await pc.setRemoteDescription(RTCSessionDescription((await r.json())["sdp"], "answer"))
            deadline = time.monotonic() + 60
            while min(c[0] for c in counts) < 30:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"streams stalled: {[c[0] for c in counts]}")
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            c0, f0, t0 = cpu_ticks(proc.pid), sum(c[0] for c in counts), time.monotonic()
            await asyncio.sleep(seconds)
            c1, f1, t1 = cpu_ticks(proc.pid), sum(c[0] for c in counts), time.monotonic()
        cpu = 100 * (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)
        return {"cpu": cpu, "per_stream": cpu / streams, "fps": (f1 - f0) / (t1 - t0) / streams}
    finally:
        for pc in pcs:
            await pc.close()
        proc.terminate()
        proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replay", type=int, default=12, help="replayed streams in the measured sender")
    ap.add_argument("--encode", type=int, default=2, help="live-encoding streams in the measured sender")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--serve", nargs=2, metavar=("MODE", "PORT"))
    args = ap.parse_args()
    if args.serve:
        await serve_sender(int(args.serve[1]), args.serve[0])
        return
    video_clip(W, H, KBPS)  # encoded once, before anything is measured (cached for later runs)
    print(f"720p VP8 {KBPS} kbit/s {FPS} fps; sender process CPU over {args.seconds:g} s")
    results = {}
    for mode, n in (("replay", args.replay), ("encode", args.encode)):
        r = results[mode] = await run(mode, n, args.seconds)
        print(f"{mode:>7}: {n:3d} streams, {r['cpu']:5.1f} % of a core, {r['per_stream']:5.2f} % per stream, "
              f"{r['fps']:4.1f} fps delivered each -> {100 / r['per_stream']:5.1f} streams per core")
    ratio = results["encode"]["per_stream"] / results["replay"]["per_stream"]
    print(f"replay sustains {ratio:.1f}x the streams of live encoding per core "
          f"(target: >= 20 streams per core, >= 10x)")


if __name__ == "__main__":
    asyncio.run(main())
