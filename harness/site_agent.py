"""One emulated site: its legs in several sessions, sending synthetic media and measuring what arrives.

Runs inside the site's network namespace (`ip netns exec`), started by the measured run
(harness/measured_run.py) with a spec file: the control plane's URL, and per leg the session,
the site's join token, and whether it sends. Each leg joins exactly as the join page does
(join token at the control plane's /ws, then the node it is redirected to), sends the profile's
replayed clip and Opus (media/synthetic.py), and receives the program without decoding. After
a warm-up it measures a window and writes one JSON report: per received video stream its kbit/s,
frame rate, freezes (> 200 ms without a frame), longest gap, end-to-end delay (from the
sender's schedule, published in `sched_dir`), and per leg the RTP loss and jitter from RTCP.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from harness.socket_delay import delay_sockets
from media.contracts.browser import TO_SITE, Answer, Error, Join, Joined, Offer, ProgramUpdate, Redirect
from media.aiortc_hooks import inbound_streams, on_keyframe_request, raise_bitrate_caps, tap_receiver
from media.room import rtcp_figures
from media.synthetic import KEY_EVERY_S, ClipIndex, ReplayAudio, ReplayVideo, audio_clip, video_clip

FREEZE_S = 0.2


@dataclass
class Received:
    slot: int
    frames: list[tuple[float, int, int]] = field(default_factory=list)  # (arrival, clip position, bytes)


@dataclass
class Leg:
    session: str
    token: str
    send: bool
    pc: RTCPeerConnection | None = None
    ws: Any = None
    program: list[str | None] = field(default_factory=lambda: [None, None])
    received: dict[int, Received] = field(default_factory=dict)
    video: ReplayVideo | None = None
    node: str = ""
    follower: asyncio.Task[None] | None = None  # reads program changes; held here so it is not collected


def _schedule_writer(path: Path, video: ReplayVideo) -> None:
    """Publish the sender's schedule (each segment: when, from which clip position) for receivers."""
    segments: list[list[float]] = []

    def on_segment(t: float, pos: int) -> None:
        segments.append([time.time() - time.monotonic() + t, pos])  # wall clock: other processes read it
        path.write_text(json.dumps({"fps": video.replay.clip.fps, "length": len(video.replay.clip.frames),
                                    "segments": segments}))
    video.replay.on_segment = on_segment


def _delay(schedule: dict[str, Any] | None, arrival_wall: float, pos: int) -> float | None:
    if not schedule or not schedule["segments"]:
        return None
    fps, length = schedule["fps"], schedule["length"]
    loop = length / fps
    base = [s for s in schedule["segments"] if s[0] <= arrival_wall]
    if not base:
        return None
    t0, p0 = base[-1]
    first = t0 + ((pos - p0) % length) / fps
    if first > arrival_wall:
        return None
    m = int((arrival_wall - first) // loop)
    return arrival_wall - (first + m * loop)


async def join(http: aiohttp.ClientSession, control: str, leg: Leg, clip: Any, opus: Any, sched_dir: Path,
               site: str, index: ClipIndex, delay_ms: float = 0) -> None:
    async with http.ws_connect(f"{control}/ws") as cp:
        await cp.send_str(Join(token=leg.token).model_dump_json())
        redirect = TO_SITE.validate_json(await cp.receive_str(timeout=20))
    if not isinstance(redirect, Redirect):
        raise RuntimeError(f"join refused: {redirect}")
    leg.node = redirect.url
    leg.ws = await http.ws_connect(redirect.url, heartbeat=10)
    await leg.ws.send_str(Join(grant=redirect.grant).model_dump_json())
    joined = TO_SITE.validate_json(await leg.ws.receive_str(timeout=20))
    if not isinstance(joined, Joined):
        raise RuntimeError(f"node refused: {joined}")
    pc = leg.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    if leg.send:
        # Each camera starts at its own moment: real endpoints' key frames do not line up, and
        # synchronised ones would burst every link queue at once every 2.5 s.
        leg.video = ReplayVideo(clip, start_at=time.monotonic() + random.uniform(0, KEY_EVERY_S))
        _schedule_writer(sched_dir / f"{leg.session}.{site}.json", leg.video)
        pc.addTransceiver(ReplayAudio(opus), direction="sendrecv")
        sender = pc.addTransceiver(leg.video, direction="sendrecv").sender
        on_keyframe_request(sender, leg.video.request_keyframe)
    else:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("video", direction="recvonly")

    @pc.on("track")
    def on_track(track: Any) -> None:
        if track.kind != "video":
            return
        transceivers = pc.getTransceivers()
        receiver = next(t.receiver for t in transceivers if t.receiver.track is track)
        slot = [t for t in transceivers if t.kind == "video"].index(
            next(t for t in transceivers if t.receiver is receiver))
        rec = leg.received[slot] = Received(slot)

        def on_frame(codec: Any, frame: Any) -> None:
            pos = index.position(frame.data)
            rec.frames.append((time.monotonic(), -1 if pos is None else pos, len(frame.data)))
        tap_receiver(receiver, on_frame)

    await pc.setLocalDescription(await pc.createOffer())
    if delay_ms:
        delay_sockets(pc, delay_ms)  # a high-delay link on a kernel without netem: the delay at our socket
    await leg.ws.send_str(Offer(sdp=pc.localDescription.sdp).model_dump_json())
    while True:
        msg = TO_SITE.validate_json(await leg.ws.receive_str(timeout=20))
        if isinstance(msg, Answer):
            await pc.setRemoteDescription(RTCSessionDescription(msg.sdp, "answer"))
            break
        if isinstance(msg, ProgramUpdate):
            leg.program = list(msg.video)
        if isinstance(msg, Error):
            raise RuntimeError(f"offer refused: {msg}")

    async def follow() -> None:
        async for raw in leg.ws:
            msg = TO_SITE.validate_json(raw.data)
            if isinstance(msg, ProgramUpdate):
                leg.program = list(msg.video)

    leg.follower = asyncio.create_task(follow())


async def rtp_counters(pc: RTCPeerConnection) -> dict[str, Any]:
    """What the node reports for a leg (media/room.py), read at this end of it."""
    return rtcp_figures(pc, await pc.getStats()).model_dump()


def stream_figures(rec: Received, t0: float, t1: float, schedule: dict[str, Any] | None, wall_offset: float) -> dict:
    frames = [f for f in rec.frames if t0 <= f[0] < t1]
    times = [t0, *(f[0] for f in frames), t1]
    gaps = [b - a for a, b in zip(times, times[1:])]
    delays = [d for f in frames if f[1] >= 0 and (d := _delay(schedule, f[0] + wall_offset, f[1])) is not None]
    return {"kbps": round(8 * sum(f[2] for f in frames) / (t1 - t0) / 1000, 1),
            "fps": round(len(frames) / (t1 - t0), 1),
            "freezes": sum(1 for g in gaps if g > FREEZE_S), "max_gap_ms": round(1000 * max(gaps)),
            "delay_ms_p50": round(1000 * statistics.median(delays), 1) if delays else None,
            "delay_ms_p95": round(1000 * sorted(delays)[int(0.95 * (len(delays) - 1))], 1) if delays else None}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    raise_bitrate_caps()
    p = spec["profile"]
    clip = video_clip(p["width"], p["height"], p["video_kbps"], cache=Path(spec["cache"]))
    opus = audio_clip(cache=Path(spec["cache"]))
    index = ClipIndex(clip)
    sched_dir = Path(spec["sched_dir"])
    legs = [Leg(l["session"], l["token"], l["send"]) for l in spec["legs"]]
    out: dict[str, Any] = {"site": spec["site"], "legs": []}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            await asyncio.gather(*(join(http, spec["control"], leg, clip, opus, sched_dir, spec["site"], index,
                                        spec.get("delay_ms", 0)) for leg in legs))
            deadline = time.monotonic() + spec["warmup_s"]
            while time.monotonic() < deadline:  # every expected stream arriving, or the warm-up is over
                if all(sum(1 for v in leg.program if v) <= sum(1 for r in leg.received.values() if r.frames)
                       for leg in legs):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(spec.get("settle_s", 2))
            # Every site measures the same window: the run says when (stdin "go"), once all are ready,
            # and nobody leaves before every site has measured (stdin "bye").
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            before = [await rtp_counters(leg.pc) for leg in legs]  # type: ignore[arg-type]
            programs = [list(leg.program) for leg in legs]
            t0 = time.monotonic()
            await asyncio.sleep(spec["window_s"])
            t1 = time.monotonic()
            after = [await rtp_counters(leg.pc) for leg in legs]  # type: ignore[arg-type]
            changed = [leg.session for leg, p in zip(legs, programs) if leg.program != p]
            wall_offset = time.time() - time.monotonic()
            out["program_changed"] = changed  # a window where the program moved measures a switch, not a link
            for leg, b, a, program in zip(legs, before, after, programs):
                lost = a["packets_lost"] - b["packets_lost"]
                got = a["packets_received"] - b["packets_received"]
                streams = []
                for slot, source in enumerate(program):
                    if source is None:
                        continue
                    path = sched_dir / f"{leg.session}.{source}.json"
                    schedule = json.loads(path.read_text()) if path.exists() else None
                    rec = leg.received.get(slot, Received(slot))
                    streams.append({"from": source, **stream_figures(rec, t0, t1, schedule, wall_offset)})
                audio = sum(x["packets_received"] for x in inbound_streams(leg.pc) if x["kind"] == "audio")  # type: ignore[arg-type]
                out["legs"].append({"session": leg.session, "node": leg.node, "send": leg.send, "streams": streams,
                                    "audio_packets": audio, "rtt_ms": a.get("rtt_ms"),
                                    "loss_pct": round(100 * lost / max(1, lost + got), 2),
                                    "jitter_ms": round(a["jitter_ms"], 1)})
        except Exception as exc:  # reported, so the run records which site failed and why
            out["error"] = repr(exc)
        finally:
            Path(args.out).write_text(json.dumps(out))
            print("done", flush=True)
            if "error" not in out:
                await asyncio.to_thread(sys.stdin.readline)  # "bye"
            for leg in legs:
                if leg.follower is not None:
                    leg.follower.cancel()
                if leg.pc is not None:
                    await leg.pc.close()
                if leg.ws is not None:
                    await leg.ws.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
