"""From what the pipeline measured to alarm observations: a pure function of the figures.

Legs: loss, jitter, RTT and MOS against their site's thresholds (monitoring/alarm_config.py).
Links: live load above its reservation, or above `link_pct` of the link's rate. Sessions: a
booked site still absent `absent_s` into its occurrence. Nodes: a registered node not beating.
Messages name sites and links as people know them, not by id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from monitoring.alarm_config import AlarmConfig, Thresholds
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


def leg_observations(cfg: AlarmConfig, topo: Topology, samples: Iterable[LegSample]) -> list[Observation]:
    out: list[Observation] = []
    for s in samples:
        if s.kind == "trunk":
            continue
        t = thresholds(cfg, topo, s.site)
        name, subject = site_name(topo, s.site), f"{s.session}/{s.site}"
        ctx: dict[str, str | None] = {"session": s.session, "site": s.site, "node": s.node}
        r = cfg.hysteresis.clear_ratio
        for kind, value, limit, unit, what in (
                (AlarmKind.LOSS, s.loss_pct, t.loss_pct, "%", "packet loss"),
                (AlarmKind.JITTER, s.jitter_ms, t.jitter_ms, "ms", "jitter"),
                (AlarmKind.RTT, s.rtt_ms, t.rtt_ms, "ms", "round trip")):
            if value is not None:
                out.append(Observation(kind, subject, value, limit, limit * r,
                                       f"{name}: {value:g} {unit} {what} (alarm above {limit:g} {unit})", context=ctx))
        if s.mos is not None:
            out.append(Observation(AlarmKind.MOS, subject, s.mos, t.mos, t.mos + cfg.hysteresis.mos_clear_margin,
                                   f"{name}: audio MOS {s.mos:.2f} (alarm below {t.mos:g})", below=True, context=ctx))
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


def absences(sessions: Iterable[dict], present: set[tuple[str, str]], now: float) -> list[Absence]:  # type: ignore[type-arg]
    """Booked sites of sessions running now that have no leg (browser or phone) in them."""
    from datetime import datetime
    out = []
    for s in sessions:
        for occ in s["occurrences"]:
            start, end = (datetime.fromisoformat(occ[k]).timestamp() for k in ("start", "end"))
            if start <= now < end:
                out += [Absence(s["id"], s["title"], x["site"], now - start) for x in s["sites"]
                        if (s["id"], x["site"]) not in present]
    return out
