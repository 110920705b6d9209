"""How a media node's cost grows with the room: CPU and memory at 2, 8, 20 and 50 sites.

Each room has two sending sites (the host and the speaker, the realistic room of
scripts/bench/forwarding.py: 720p VP8 at 2 Mbit/s and Opus) and every other site
receives the two-stream program (2 video + 1 audio). The node runs in its own
process; its CPU (utime+stime) and resident memory are read from /proc over the
window. The same room runs on confctl's RTP-level path, on its former frame path
(the baseline, CONFCTL_FRAME_FORWARDING=1) and on Janus, each as far as this
machine carries it: the receivers are aiortc peers in this driver process, and
past some size they, not the server, cannot keep up (the row says so).

    .venv/bin/python scripts/bench/room_scale.py [--sites 2,8,20,50] [--seconds 8]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shutil
import time
from pathlib import Path

import aiohttp
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("forwarding_bench", HERE / "forwarding.py")
fw = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(fw)  # type: ignore[union-attr]


async def confctl_room(sites: int, clip: list, seconds: float, frames: bool) -> dict[str, float | str]:
    if sites > 2:
        try:
            return dict(await fw.run_case(sites - 2, clip, seconds, frames=frames))
        except RuntimeError as exc:  # the receivers (this process) could not keep up: say so, not a number
            return {"error": str(exc).split(":")[0]}
    # two sites: each receives the other; the node alone, measured without receivers of ours
    node, port = fw.start_node(frames)
    pcs: list = []
    try:
        async with aiohttp.ClientSession() as http:
            await fw.offer_to(http, port, "host", fw.publisher_pc(clip, False), pcs)
            await fw.offer_to(http, port, "speaker", fw.publisher_pc(clip, True), pcs)
            await asyncio.sleep(4)
            c0, t0 = fw.cpu_ticks(node.pid), time.monotonic()
            await asyncio.sleep(seconds)
            return {"cpu": 100 * (fw.cpu_ticks(node.pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0),
                    "fps": 0.0, "rss": fw.rss_mib(node.pid)}
    finally:
        for pc in pcs:
            await pc.close()
        node.terminate()
        node.wait()


async def janus_room(sites: int, clip: list, seconds: float, iface: str) -> dict[str, float | str]:
    try:
        out: dict[str, float | str] = dict(await fw.run_janus(max(1, sites - 2), clip, seconds, iface))
    except RuntimeError as exc:
        return {"error": str(exc).split(":")[0]}
    return out


def cell(r: dict[str, float | str], key: str, fmt: str) -> str:
    return "—" if "error" in r or key not in r else format(r[key], fmt)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", default="2,8,20,50")
    ap.add_argument("--seconds", type=float, default=8)
    args = ap.parse_args()
    iface = fw.first_interface()
    have_janus = bool(shutil.which("janus")) and iface is not None
    fw.pin_driver()
    fw.receivers_skip_header_extensions()
    clip = fw.encode_clip()
    sizes = [int(x) for x in args.sites.split(",")]
    rows = []
    with tqdm(total=len(sizes) * (3 if have_janus else 2), desc="rooms", unit="run") as bar:
        for n in sizes:
            rtp = await confctl_room(n, clip, args.seconds, frames=False)
            bar.update()
            frames = await confctl_room(n, clip, args.seconds, frames=True)
            bar.update()
            janus = await janus_room(n, clip, args.seconds, iface) if have_janus and n > 2 else {"error": "n/a"}
            bar.update(1 if have_janus else 0)
            rows.append((n, rtp, frames, janus))
    print(f"\nroom: 2 sites send 720p VP8 at 2 Mbit/s + Opus, the others each receive 2 video + 1 audio; "
          f"window {args.seconds:g} s; node CPU in % of one core, memory RSS in MiB"
          + ("" if have_janus else "; Janus not installed (apt-get install janus): its column is empty"))
    print(f"{'sites':>5} {'streams out':>11} {'confctl %core':>14} {'MiB':>6} {'fps':>5} {'frames %core':>13} {'MiB':>6} "
          f"{'janus %core':>12} {'fps':>5} {'rtp/frames':>11} {'rtp/janus':>10}  note")
    for n, rtp, frames, janus in rows:
        ratio = lambda a, b: (f"{a['cpu'] / b['cpu']:.2f}x" if "error" not in a and "error" not in b  # noqa: E731
                              and b.get("cpu") else "—")
        note = "; ".join(f"{name}: {r['error']}" for name, r in (("confctl", rtp), ("frames", frames), ("janus", janus))
                         if "error" in r and r["error"] != "n/a")
        print(f"{n:>5} {3 * max(0, n - 2):>11} {cell(rtp, 'cpu', '.1f'):>14} {cell(rtp, 'rss', '.0f'):>6} "
              f"{cell(rtp, 'fps', '.0f'):>5} {cell(frames, 'cpu', '.1f'):>13} {cell(frames, 'rss', '.0f'):>6} "
              f"{cell(janus, 'cpu', '.1f'):>12} {cell(janus, 'fps', '.0f'):>5} {ratio(rtp, frames):>11} "
              f"{ratio(rtp, janus):>10}  {note}")
    print("fps: the slowest receiver's video frames a second (30 = all kept up); where it falls, the receivers in "
          "this one driver process, not the server, are the limit, and the server's figure includes resending to them")


if __name__ == "__main__":
    asyncio.run(main())
