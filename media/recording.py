"""Recording encoded tracks as they arrive: PyAV muxing into WebM, no transcoding.

Each recorded track gets its own writer thread fed through a bounded queue,
so disk I/O never blocks the event loop and a slow disk drops frames instead
of growing memory. Closing the recorder finalizes the file (cues, duration);
the room closes recorders when a leg leaves, however it leaves.
"""
from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av

from media.forwarding import EncodedFrame, vp8_size

log = logging.getLogger("media.recording")
QUEUE_FRAMES = 300  # ~10 s of video: a disk slower than that loses frames, not memory


class TrackRecorder:
    """Writes one encoded track (VP8 video or Opus audio) to a WebM file."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self.frames_written = 0
        self.frames_dropped = 0
        self._queue: queue.Queue[EncodedFrame | None] = queue.Queue(QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name=f"record-{path.name}", daemon=True)
        self._thread.start()

    def push(self, frame: EncodedFrame) -> None:
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.frames_dropped += 1

    def close(self) -> None:
        """Finalize the file; blocks until written (call from a thread, not the event loop)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        container = None
        stream = None
        first_pts: int | None = None
        try:
            while (frame := self._queue.get()) is not None:
                if stream is None:
                    if self.kind == "video":
                        size = vp8_size(frame.data) if frame.keyframe else None
                        if size is None:
                            continue  # a file starts on a key frame, which carries the picture size
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                        container = av.open(str(self.path), "w", format="webm")
                        stream = container.add_stream("vp8")
                        stream.width, stream.height = size
                    else:
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                        container = av.open(str(self.path), "w", format="webm")
                        stream = container.add_stream("libopus", rate=48000)
                    stream.time_base = Fraction(1, 1000)
                    first_pts = frame.pts
                packet = av.Packet(frame.data)
                packet.stream = stream
                packet.time_base = frame.time_base
                packet.pts = packet.dts = frame.pts - first_pts
                packet.is_keyframe = frame.keyframe
                container.mux(packet)
                self.frames_written += 1
        except Exception:  # a recording failure must not take the call down
            log.exception("recording %s failed", self.path)
        finally:
            if container is not None:
                container.close()


def describe(path: Path) -> dict[str, object]:
    """What a recording holds: site, kind, size and the duration its container reports."""
    site, kind, _ = path.stem.rsplit("-", 2)
    duration = None
    try:
        with av.open(str(path)) as c:
            if c.duration is not None:
                duration = round(c.duration / av.time_base, 3)
    except (av.FFmpegError, OSError):
        pass  # still being written, or damaged: listed without a duration
    return {"name": path.name, "site": site, "kind": kind, "bytes": path.stat().st_size, "duration_s": duration,
            "modified": int(path.stat().st_mtime)}


def purge_older_than(root: Path, max_age_s: float, now: float) -> list[Path]:
    """Retention: delete recordings older than max_age_s; returns what was removed."""
    removed = []
    if root.is_dir():
        for f in root.glob("*/*.webm"):
            if now - f.stat().st_mtime > max_age_s:
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed
