"""Live load on every link of the hierarchy, per direction, from the sampled legs: a pure function.

A site's leg runs between the site and the node it is attached to: what the site sends crosses
the links of that path towards the node, what the node forwards crosses them back. A trunk runs
between two nodes' sites the same way. In a tree the path from a to b climbs from a to their
lowest common ancestor (each link "up") and descends to b (each link "down").
"""
from __future__ import annotations

from typing import Iterable

from monitoring.pipeline import LegSample
from rooms.ids import LinkId, SiteId
from rooms.topology import Topology


def path(topo: Topology, a: SiteId, b: SiteId) -> list[tuple[LinkId, str]]:
    """(link, direction) crossed going from site a to site b."""
    up_a, up_b = list(topo.path(a)), list(topo.path(b))
    common = set(up_a) & set(up_b)
    climb = [l for l in up_a if l not in common]
    descend = [l for l in up_b if l not in common]
    return [(l, "up") for l in climb] + [(l, "down") for l in reversed(descend)]


def node_site(topo: Topology, node: str) -> SiteId:
    n = topo.nodes.get(node)  # type: ignore[call-overload]
    return n.site if n is not None else topo.root  # "in-process" single-node rooms: the province's node


def live_link_load(topo: Topology, samples: Iterable[LegSample]) -> dict[tuple[str, str], float]:
    load: dict[tuple[str, str], float] = {}

    def add(a: SiteId, b: SiteId, kbps: float) -> None:
        for link, d in path(topo, a, b):
            load[(str(link), d)] = load.get((str(link), d), 0.0) + kbps

    for s in samples:
        if s.kind == "trunk":
            child, parent = (node_site(topo, n) for n in s.site.split("->"))
            add(child, parent, s.kbps_in)  # up the trunk
            add(parent, child, s.kbps_out)
        elif s.site in topo.sites:
            node = node_site(topo, s.node)
            add(SiteId(s.site), node, s.kbps_in)
            add(node, SiteId(s.site), s.kbps_out)
    return {k: round(v, 1) for k, v in load.items()}


def utilization_rows(topo: Topology, reserved: dict[tuple[str, str], int],
                     live: dict[tuple[str, str], float]) -> list[dict[str, object]]:
    """Every link with reserved or live load, per direction: reserved beside live, against the rate."""
    rows: list[dict[str, object]] = []
    for link, d in sorted(set(reserved) | set(live)):
        l = topo.links[LinkId(link)]
        r, v = reserved.get((link, d), 0), live.get((link, d), 0.0)
        rows.append({"link": link, "from": l.child, "to": l.parent, "direction": d, "rate_kbps": l.rate_kbps,
                     "limit_kbps": l.limit_kbps, "reserved_kbps": r, "live_kbps": v,
                     "utilization_pct": round(100 * v / l.rate_kbps, 1),
                     "live_over_reserved": v > over_reserved_threshold(r), "live_over_90pct": v > 0.9 * l.rate_kbps})
    return rows


def over_reserved_threshold(reserved_kbps: float) -> float:
    """Live load counts as over its reservation past 10 % (senders' rates wander) and 50 kbit/s (RTCP)."""
    return max(1.1 * reserved_kbps, reserved_kbps + 50)
