"""Recording encoded tracks as they arrive: PyAV muxing into WebM, no transcoding.

Each recorded track gets its own writer thread fed through a bounded queue,
so disk I/O never blocks the event loop and a slow disk drops frames instead
of growing memory. Closing the recorder finalizes the file (cues, duration);
the room closes recorders when a leg leaves, however it leaves.

A file is written as `NAME.webm.part` and renamed when finalized, so a process
that was killed leaves `.part` files behind: short, flushed clusters keep all
but the last moments of them readable, and `recover_interrupted` (run when
the node starts) remuxes each into a finalized `NAME.webm` with its duration.

A node process tags its partial files with its id (`NAME.webm.node-cc.part`, see `set_owner`):
when it dies and the control plane marks it down, the control plane recovers that node's
files alone (confctl/node_watch.py) while other nodes keep writing theirs in the same folder.
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
# Short clusters, flushed as they close: a killed process loses at most ~0.5 s of a file.
PART = ".part"
MUX_OPTIONS = {"cluster_time_limit": "500", "flush_packets": "1"}
_owner: str | None = None  # this process's node id, when it is a node process


def set_owner(node_id: str | None) -> None:
    """Tag this process's partial files (a node process calls it once, at start)."""
    global _owner
    _owner = node_id


def _part_suffix(owner: str | None) -> str:
    return f".{owner}{PART}" if owner else PART


class TrackRecorder:
    """Writes one encoded track (VP8 video or Opus audio) to a WebM file."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind
        self.partial = path.with_name(path.name + _part_suffix(_owner))
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
                        container = av.open(str(self.partial), "w", format="webm", options=MUX_OPTIONS)
                        stream = container.add_stream("vp8")
                        stream.width, stream.height = size
                    else:
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                        container = av.open(str(self.partial), "w", format="webm", options=MUX_OPTIONS)
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
                try:
                    container.close()
                    self.partial.replace(self.path)
                except (av.FFmpegError, OSError):
                    log.exception("finalizing %s failed; recovery will remux it at the next start", self.partial)


def recover_interrupted(root: Path, owner: str | None = None) -> list[Path]:
    """Finalize what a killed process left half-written; returns the recovered recordings.

    `owner`: the node whose files these are (None: the control plane's own). Call before any
    recorder of that owner starts (it takes every such partial file as abandoned).
    """
    recovered = []
    suffix = _part_suffix(owner)
    for part in sorted(root.glob(f"*/*.webm{suffix}")) if root.is_dir() else []:
        target = part.with_name(part.name.removesuffix(suffix))
        try:
            if _remux(part, target) > 0:
                recovered.append(target)
                log.info("recovered %s from an interrupted recording", target)
            else:
                target.unlink(missing_ok=True)
                log.warning("%s held no complete frame; removed", part)
        except (av.FFmpegError, OSError) as exc:  # unreadable from its start: nothing to keep
            target.unlink(missing_ok=True)
            log.warning("%s could not be recovered (%r); removed", part, exc)
        part.unlink(missing_ok=True)
    if recovered:
        log.warning("recovered %d interrupted recording(s) in %s", len(recovered), root)
    return recovered


def _remux(src: Path, dst: Path) -> int:
    """Copy every complete packet into a new, finalized WebM; returns the packets copied."""
    copied = 0
    with av.open(str(src)) as inp:
        stream = inp.streams[0]
        with av.open(str(dst), "w", format="webm") as out:
            copy = out.add_stream_from_template(stream)
            for packet in inp.demux(stream):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = copy
                out.mux(packet)
                copied += 1
    return copied


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
            try:
                mtime = f.stat().st_mtime
            except FileNotFoundError:  # deleted through the API meanwhile
                continue
            if now - mtime > max_age_s:
                f.unlink(missing_ok=True)
                removed.append(f)
    return removed
