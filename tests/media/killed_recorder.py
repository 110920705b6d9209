"""Run as a process: record five seconds of real VP8 through TrackRecorder, then wait to be killed.

Prints "written FRAMES SECONDS" once every frame reached the muxer; never closes
the recorder, so the file is left as a killed node would leave it.
"""
from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av

from media.forwarding import EncodedFrame
from media.recording import TrackRecorder

FPS = 30


def main() -> None:
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.bit_rate = 500_000
    rec = TrackRecorder(Path(sys.argv[1]), "video")
    pushed, last = 0, 0
    for i in range(5 * FPS):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for k, plane in enumerate(frame.planes):  # a moving pattern, so every frame has content
            plane.update(bytes((i * 7 + k * 50 + j // 16) % 256 for j in range(plane.buffer_size)))
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        for p in enc.encode(frame):
            rec.push(EncodedFrame(bytes(p), p.pts * (90000 // FPS), Fraction(1, 90000), p.is_keyframe))
            pushed, last = pushed + 1, p.pts
    while rec.frames_written < pushed:  # the writer thread drains its queue
        rec._thread.join(0.01)
    print(f"written {pushed} {(last + 1) / FPS:.3f}", flush=True)
    sys.stdin.read()  # until killed


if __name__ == "__main__":
    main()
