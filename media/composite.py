"""After the session: one grid video from the per-site recordings, rendered on demand.

Each site's VP8 recording is decoded, scaled to a tile and placed on a grid
on a common timeline (files carry their start time in their names), then
encoded once. This is the only place the media plane decodes, and it runs
after the meeting in a worker thread, never on the forwarding path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av

TILE = (640, 360)
FPS = 15


@dataclass(frozen=True)
class Tile:
    path: Path
    site: str
    start_ms: int


def tiles_in(folder: Path) -> list[Tile]:
    out = []
    for p in sorted(folder.glob("*-video-*.webm")):
        site, _, start = p.stem.rsplit("-", 2)
        out.append(Tile(p, site, int(start)))
    return out


def _frames(path: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield float(f.time or 0.0), f.reformat(width=TILE[0], height=TILE[1], format="yuv420p")


def _duration(path: Path) -> float:
    with av.open(str(path)) as c:
        return (c.duration or 0) / av.time_base


def render(tiles: list[Tile], out: Path, progress: Callable[[float], None] = lambda f: None) -> Path:
    """Write a grid video of `tiles` to `out`; `progress` gets 0..1 as frames are done."""
    if not tiles:
        raise ValueError("no video recordings to compose")
    t0 = min(t.start_ms for t in tiles) / 1000
    ends = [t.start_ms / 1000 + _duration(t.path) for t in tiles]
    total = max(ends) - t0
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    width, height = cols * TILE[0], rows * TILE[1]
    sources = [_frames(t.path) for t in tiles]
    current: list[av.VideoFrame | None] = [None] * len(tiles)
    pending: list[tuple[float, av.VideoFrame] | None] = [next(s, None) for s in sources]
    n_frames = max(1, int(total * FPS))
    with av.open(str(out), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = 1_500_000 * len(tiles)
        for k in range(n_frames):
            t = k / FPS
            canvas = av.VideoFrame(width, height, "yuv420p")
            for plane, scale in zip(canvas.planes, (1, 2, 2)):
                plane.update(bytes([16 if scale == 1 else 128]) * plane.buffer_size)  # black
            for i, tile in enumerate(tiles):
                local = t - (tile.start_ms / 1000 - t0)
                while pending[i] is not None and pending[i][0] <= local:
                    current[i] = pending[i][1]
                    pending[i] = next(sources[i], None)
                if current[i] is not None and local <= ends[i] - tile.start_ms / 1000:
                    _blit(canvas, current[i], (i % cols) * TILE[0], (i // cols) * TILE[1])
            canvas.pts = k
            canvas.time_base = Fraction(1, FPS)
            for packet in stream.encode(canvas):
                container.mux(packet)
            if k % FPS == 0:
                progress(k / n_frames)
        for packet in stream.encode(None):
            container.mux(packet)
    progress(1.0)
    return out


def _blit(dst: av.VideoFrame, src: av.VideoFrame, x: int, y: int) -> None:
    for p, (dplane, splane) in enumerate(zip(dst.planes, src.planes)):
        div = 1 if p == 0 else 2
        w, h, dx, dy = TILE[0] // div, TILE[1] // div, x // div, y // div
        sbuf, dbuf = memoryview(splane), memoryview(dplane)
        for row in range(h):
            so = row * splane.line_size
            do = (dy + row) * dplane.line_size + dx
            dbuf[do:do + w] = sbuf[so:so + w]
