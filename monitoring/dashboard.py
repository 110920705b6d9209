"""What the operators' dashboard shows at one moment: a pure function of the latest figures.

The hierarchy with each link's live load against its rate and reservation (per direction), the
live sessions with their legs named as people name the sites and graded by their site's alarm
thresholds, and the open alarms. Pushed to every open dashboard after each sample.
"""
from __future__ import annotations

from typing import Any, Iterable

from monitoring.alarm_config import AlarmConfig
from monitoring.alarm_rules import site_name, thresholds
from monitoring.pipeline import LegSample
from rooms.topology import Topology


def _limits(cfg: AlarmConfig, topo: Topology, s: LegSample) -> list[tuple[str, float | None, float]]:
    t = thresholds(cfg, topo, s.site)
    if s.jitter_audio_ms is not None or s.jitter_video_ms is not None:  # each medium against its own
        jitter = [("jitter_ms", s.jitter_audio_ms, t.jitter_audio_ms), ("jitter_ms", s.jitter_video_ms, t.jitter_video_ms)]
    else:  # one figure for both: the larger threshold (monitoring/alarm_config.py)
        jitter = [("jitter_ms", s.jitter_ms, max(t.jitter_audio_ms, t.jitter_video_ms))]
    return [("loss_pct", s.loss_pct, t.loss_pct), *jitter, ("rtt_ms", s.rtt_ms, t.rtt_ms),
            ("mos", None if s.mos is None else -s.mos, -t.mos)]  # MOS: lower is worse, so compared negated


def beyond(cfg: AlarmConfig, topo: Topology, s: LegSample) -> list[str]:
    """The figures of a leg past its site's alarm thresholds (a satellite's expected delay is not)."""
    if s.kind == "trunk":
        return []
    return list(dict.fromkeys(k for k, v, limit in _limits(cfg, topo, s) if v is not None and v > limit))


def grade(cfg: AlarmConfig, topo: Topology, s: LegSample) -> str:
    """good | fair | poor: poor past any alarm threshold, fair past half of one (MOS: within 0.3 of it)."""
    if s.kind == "trunk":
        return "good"
    if beyond(cfg, topo, s):
        return "poor"
    near = [v > (limit - 0.3 if k == "mos" else limit / 2) for k, v, limit in _limits(cfg, topo, s) if v is not None]
    if any(near) or (s.video_score is not None and s.video_score < 3):
        return "fair"
    return "good"


def snapshot(cfg: AlarmConfig, topo: Topology, latest: Iterable[LegSample], links: list[dict[str, Any]],
             alarms: list[dict[str, Any]], titles: dict[str, str], at: float) -> dict[str, Any]:
    sessions: dict[str, dict[str, Any]] = {}
    for s in sorted(latest, key=lambda x: (x.session, x.kind == "trunk", x.site)):
        entry = sessions.setdefault(s.session, {"id": s.session, "title": titles.get(s.session, s.session), "legs": []})
        name = s.site if s.kind == "trunk" else site_name(topo, s.site)
        entry["legs"].append({"site": s.site, "name": name, "node": s.node, "kind": s.kind, "grade": grade(cfg, topo, s),
                              "beyond": beyond(cfg, topo, s),
                              "kbps_in": s.kbps_in, "kbps_out": s.kbps_out, "loss_pct": s.loss_pct,
                              "jitter_ms": s.jitter_ms, "jitter_audio_ms": s.jitter_audio_ms,
                              "jitter_video_ms": s.jitter_video_ms, "rtt_ms": s.rtt_ms, "fps": s.fps, "resolution": s.resolution,
                              "freezes": s.freezes, "mos": s.mos, "video_score": s.video_score})
    link_view: dict[str, dict[str, Any]] = {}
    for row in links:
        link_view.setdefault(str(row["link"]), {})[str(row["direction"])] = {
            k: row[k] for k in ("live_kbps", "reserved_kbps", "rate_kbps", "utilization_pct", "live_over_reserved")}
    return {"type": "snapshot", "at": at, "sessions": list(sessions.values()), "links": link_view,
            "alarms": [{k: a[k] for k in ("id", "kind", "subject", "message", "raised_at", "acked_by", "session_id",
                                          "site_id", "link_id", "node_id")} for a in alarms]}
