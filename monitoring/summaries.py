"""What the 15-minute history leaves behind: per-minute aggregates and a leg's quality for its call record.

Both are pure over LegSamples. Averages are over the samples that had the figure (a phone has no
loss or video score); "worst" is the lowest MOS and video score, the highest loss.
"""
from __future__ import annotations

from typing import Any, Iterable

from monitoring.pipeline import LegSample

Key = tuple[str, str, str]


def _avg(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 2) if xs else None


def _col(samples: list[LegSample], name: str) -> list[float]:
    return [v for s in samples if (v := getattr(s, name)) is not None]


def minute_row(key: Key, minute: int, samples: list[LegSample]) -> dict[str, Any]:
    loss, jitter, mos, video = (_col(samples, n) for n in ("loss_pct", "jitter_ms", "mos", "video_score"))
    return {"session_id": key[0], "node": key[1], "site": key[2], "minute": minute, "kind": samples[-1].kind,
            "samples": len(samples), "kbps_in": _avg([s.kbps_in for s in samples]) or 0.0,
            "kbps_out": _avg([s.kbps_out for s in samples]) or 0.0,
            "loss_avg": _avg(loss), "loss_max": max(loss, default=None), "jitter_avg": _avg(jitter),
            "jitter_max": max(jitter, default=None), "rtt_avg": _avg(_col(samples, "rtt_ms")),
            "mos_avg": _avg(mos), "mos_min": min(mos, default=None), "video_avg": _avg(video),
            "video_min": min(video, default=None), "freezes": sum(s.freezes for s in samples)}


class MinuteAggregator:
    """Collects each leg's samples by minute; a minute is handed back once a later one begins."""

    def __init__(self) -> None:
        self.open: dict[tuple[Key, int], list[LegSample]] = {}

    def add(self, samples: Iterable[LegSample], now: float) -> list[dict[str, Any]]:
        for s in samples:
            self.open.setdefault((s.key, int(s.t // 60) * 60), []).append(s)
        current = int(now // 60) * 60
        done = [k for k in self.open if k[1] < current]
        return [minute_row(k[0], k[1], self.open.pop(k)) for k in sorted(done, key=lambda k: k[1])]

    def flush(self) -> list[dict[str, Any]]:
        """Every minute still open (at shutdown): partial, but better kept than lost."""
        rows = [minute_row(k[0], k[1], v) for k, v in self.open.items()]
        self.open.clear()
        return rows


def leg_quality(samples: Iterable[LegSample], start: float, end: float) -> dict[str, Any]:
    """A call record's quality columns from the leg's samples between its join and leave."""
    mine = [s for s in samples if start <= s.t <= end + 1]
    loss, mos, video = (_col(mine, n) for n in ("loss_pct", "mos", "video_score"))
    return {"avg_mos": _avg(mos), "worst_mos": min(mos, default=None), "avg_loss_pct": _avg(loss),
            "worst_loss_pct": max(loss, default=None), "avg_video": _avg(video), "worst_video": min(video, default=None),
            "avg_kbps_in": _avg([s.kbps_in for s in mine]), "avg_kbps_out": _avg([s.kbps_out for s in mine])}
