"""From what the pipeline measured to alarm observations: a pure function of the figures.

Legs: loss, jitter (audio and video each against its own), RTT and MOS against their site's
thresholds (monitoring/alarm_config.py), each judged over the leg's window of samples
(monitoring/alarm_window.py); a site whose camera the node policed during the window (it sent above
its reserved rate, media/policing.py). Links: live load above its reservation, or above `link_pct` of the
link's rate. Sessions: a booked site that has not joined `absent_s` into its occurrence; a site that
joined and left is not absent (it may have left on purpose; a leg dropped by a fault is in its call
record's end reason). Nodes: a registered node not beating. Messages name sites and links as people
know them, not by id.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

from monitoring.alarm_config import AlarmConfig, Thresholds
from monitoring.alarm_window import judged
from monitoring.alarms import AlarmKind, Observation
from monitoring.link_load import over_reserved_threshold
from monitoring.pipeline import LegSample
from rooms.ids import SiteId
from rooms.topology import Topology


@dataclass(frozen=True)
class Absence:
    session: str
    title: str
    site: str
    seconds: float  # since the occurrence started


def thresholds(cfg: AlarmConfig, topo: Topology, site: str) -> Thresholds:
    s = topo.sites.get(SiteId(site))
    return cfg.for_site(site, s.level if s else None, s.rtt_ms if s else None)


def site_name(topo: Topology, site: str) -> str:
    s = topo.sites.get(SiteId(site))
    return s.name if s is not None else site


def _leg_rules(win: Sequence[LegSample], t: Thresholds) -> list[tuple[AlarmKind, str, float, str, str]]:
    """(kind, figure, threshold, unit, words) of the "above" rules for one leg's window."""
    rules = [(AlarmKind.LOSS, "loss_pct", t.loss_pct, "%", "packet loss")]
    if any(x.jitter_audio_ms is not None or x.jitter_video_ms is not None for x in win):
        rules += [(AlarmKind.JITTER_AUDIO, "jitter_audio_ms", t.jitter_audio_ms, "ms", "audio jitter"),
                  (AlarmKind.JITTER_VIDEO, "jitter_video_ms", t.jitter_video_ms, "ms", "video jitter")]
    else:  # one figure for both media, their maximum: beyond the larger threshold, one of them surely is
        rules.append((AlarmKind.JITTER, "jitter_ms", max(t.jitter_audio_ms, t.jitter_video_ms), "ms",
                      "jitter (audio and video together)"))
    rules.append((AlarmKind.RTT, "rtt_ms", t.rtt_ms, "ms", "round trip"))
    return rules


def leg_observations(cfg: AlarmConfig, topo: Topology, windows: Iterable[Sequence[LegSample]]) -> list[Observation]:
    """Each live leg's window of samples (oldest first, monitoring/alarm_window.py) against its site's
    thresholds; a window not yet full is not judged."""
    out: list[Observation] = []
    w, r = cfg.window, cfg.hysteresis.clear_ratio
    over = f"{'median' if w.percentile == 50 else f'p{w.percentile:g}'} of {w.samples} samples"
    for win in windows:
        if not win or len(win) < w.samples or win[-1].kind == "trunk":
            continue
        s = win[-1]
        t = thresholds(cfg, topo, s.site)
        name, subject = site_name(topo, s.site), f"{s.session}/{s.site}"
        ctx: dict[str, str | None] = {"session": s.session, "site": s.site, "node": s.node}
        for kind, figure, limit, unit, what in _leg_rules(win, t):
            value = judged((getattr(x, figure) for x in win), w.percentile)
            if value is not None:
                out.append(Observation(kind, subject, value, limit, limit * r,
                                       f"{name}: {value:g} {unit} {what} ({over}; alarm above {limit:g} {unit})",
                                       context=ctx))
        policed = win[-1].policed_frames - win[0].policed_frames  # cumulative: what the window added
        out.append(Observation(AlarmKind.OVER_RESERVATION, subject, policed, 0, 0,
                               f"{name}: sends above its reserved video rate; the node dropped {policed} of its "
                               f"frames in the last {len(win)} samples", context=ctx))
        mos = judged((x.mos for x in win), w.percentile, below=True)
        if mos is not None:
            out.append(Observation(AlarmKind.MOS, subject, mos, t.mos, t.mos + cfg.hysteresis.mos_clear_margin,
                                   f"{name}: audio MOS {mos:.2f} ({over}; alarm below {t.mos:g})", below=True,
                                   context=ctx))
    return out


def link_observations(cfg: AlarmConfig, topo: Topology, rows: Iterable[dict]) -> list[Observation]:  # type: ignore[type-arg]
    out: list[Observation] = []
    r = cfg.hysteresis.clear_ratio
    for row in rows:
        link, d = str(row["link"]), str(row["direction"])
        child, parent = site_name(topo, str(row["from"])), site_name(topo, str(row["to"]))
        where = f"{child} → {parent}" if d == "up" else f"{parent} → {child}"
        ctx: dict[str, str | None] = {"link": link, "direction": d}
        live, reserved, rate = float(row["live_kbps"]), float(row["reserved_kbps"]), float(row["rate_kbps"])
        over = over_reserved_threshold(reserved)
        out.append(Observation(AlarmKind.OVER_RESERVED, f"{link}/{d}", live, over, over,
                               f"{where}: {live:,.0f} kbit/s live, {reserved:,.0f} reserved", context=ctx))
        pct = thresholds(cfg, topo, str(row["from"])).link_pct
        out.append(Observation(AlarmKind.OVER_RATE, f"{link}/{d}", 100 * live / rate, pct, pct * r,
                               f"{where}: {live:,.0f} of {rate:,.0f} kbit/s ({100 * live / rate:.0f} %, alarm above "
                               f"{pct:g} %)", context=ctx))
    return out


def absence_observations(cfg: AlarmConfig, topo: Topology, absent: Iterable[Absence]) -> list[Observation]:
    out = []
    for a in absent:
        limit = thresholds(cfg, topo, a.site).absent_s
        out.append(Observation(AlarmKind.ABSENT, f"{a.session}/{a.site}", a.seconds, limit, limit,
                               f"{site_name(topo, a.site)} has not joined “{a.title}”, {a.seconds / 60:.0f} min "
                               "after its start", immediate=True, context={"session": a.session, "site": a.site}))
    return out


def node_observations(down: Iterable[tuple[str, float]]) -> list[Observation]:
    """(node, seconds since its last beat) of registered nodes that stopped beating."""
    return [Observation(AlarmKind.NODE_DOWN, node, seconds, 0, 0, f"media node {node} is down (no heartbeat for "
                        f"{seconds:.0f} s)", immediate=True, context={"node": node}) for node, seconds in down]


def running_occurrences(sessions: Iterable[dict], now: float) -> dict[str, tuple[float, float]]:  # type: ignore[type-arg]
    """Each session's occurrence running now: (start, end) in epoch seconds."""
    out = {}
    for s in sessions:
        for occ in s["occurrences"]:
            start, end = (datetime.fromisoformat(occ[k]).timestamp() for k in ("start", "end"))
            if start <= now < end:
                out[s["id"]] = (start, end)
    return out


def absences(sessions: Iterable[dict], joined: set[tuple[str, str]], now: float) -> list[Absence]:  # type: ignore[type-arg]
    """Booked sites of sessions running now that have not joined this occurrence: `joined` holds every
    (session, site) with a leg (browser or phone) live now or at any time since the occurrence began."""
    sessions = list(sessions)
    running = running_occurrences(sessions, now)
    return [Absence(s["id"], s["title"], x["site"], now - running[s["id"]][0]) for s in sessions if s["id"] in running
            for x in s["sites"] if (s["id"], x["site"]) not in joined]
