"""What a phone's audio costs the event loop: Opus codecs inline (as before) against on the room's
codec thread (media/pcm_leg.py), in the same run.

A room with one phone and N other audio sources: every 20-ms tick, each source's Opus frame is fed to
its decoder and the phone's 20 ms of PCM to its encoder. Measured on the loop's thread: the time each
tick keeps the loop busy (p50 and p99), and an asyncio ticker's lateness (p99) while the room's
ticks run, alternating the two ways tick by tick so machine noise falls on both. Prints each figure
and threaded/inline as the ratio.

    .venv/bin/python scripts/bench/pcm_codecs.py [--sources 4] [--ticks 1500]
"""
from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import struct
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from media.forwarding import EncodedFrame, Source  # noqa: E402
from media.pcm_leg import CodecThread, PcmLeg, SourceDecoder  # noqa: E402


def opus_frames(n: int) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "mono", "s16", 32000
    out: list[bytes] = []
    for i in range(n):
        f = av.AudioFrame(format="s16", layout="mono", samples=960)
        f.planes[0].update(struct.pack("<960h", *(int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + k) / 48000))
                                                  for k in range(960))))
        f.sample_rate, f.pts, f.time_base = 48000, i * 960, Fraction(1, 48000)
        out += [bytes(p) for p in enc.encode(f)]
    return out


class InlineDecoder(SourceDecoder):  # the way it was: decoding in the source's sink, on the loop
    def feed(self, frame: EncodedFrame) -> None:
        self.decode(bytes(frame.data))


class InlinePhone(PcmLeg):
    def push_pcm(self, pcm: bytes) -> int:
        self.encode(pcm)
        return 0


def frame(data: bytes, n: int) -> EncodedFrame:
    return EncodedFrame(data, n * 960, Fraction(1, 48000), False)


async def main(args: argparse.Namespace) -> None:
    packets = opus_frames(200)
    pcm = struct.pack("<160h", *(int(6000 * math.sin(2 * math.pi * 300 * k / 8000)) for k in range(160)))
    codec = CodecThread("bench")
    ways = {
        "inline": ([InlineDecoder(codec) for _ in range(args.sources)], InlinePhone("phone", Source("audio", lambda: None), codec)),
        "threaded": ([SourceDecoder(codec) for _ in range(args.sources)], PcmLeg("phone", Source("audio", lambda: None), codec)),
    }
    busy: dict[str, list[float]] = {w: [] for w in ways}
    late: dict[str, list[float]] = {w: [] for w in ways}
    loop = asyncio.get_running_loop()
    step = 0.02
    for tick in range(args.ticks):
        for way, (decoders, phone) in ways.items():
            started = time.perf_counter()
            for d in decoders:
                d.feed(frame(packets[tick % len(packets)], tick))
            phone.push_pcm(pcm)
            busy[way].append(time.perf_counter() - started)
            due = loop.time() + step / 2
            await asyncio.sleep(step / 2)  # the ticker: how late does the loop wake it
            late[way].append(max(0.0, loop.time() - due))
        if tick % 250 == 0:
            print(f"  tick {tick}/{args.ticks}", file=sys.stderr)
    codec.stop()
    await asyncio.to_thread(codec.join)

    def p(xs: list[float], q: float) -> float:
        return statistics.quantiles(xs, n=100)[q - 1] * 1e6

    print(f"one phone + {args.sources} audio sources, {args.ticks} ticks of 20 ms each way, alternating")
    print(f"{'figure':40} {'inline':>10} {'threaded':>10} {'ratio':>7}")
    for name, xs, q in (("loop busy per tick, p50 (us)", busy, 50), ("loop busy per tick, p99 (us)", busy, 99),
                        ("ticker lateness, p99 (us)", late, 99)):
        a, b = p(xs["inline"], q), p(xs["threaded"], q)
        print(f"{name:40} {a:10.0f} {b:10.0f} {b / a if a else float('nan'):7.2f}")
    print(f"codec jobs dropped (thread behind): {codec.dropped}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--ticks", type=int, default=1500)
    asyncio.run(main(ap.parse_args()))
