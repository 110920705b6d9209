"""How many concurrent sessions each class of link admits, derived from the plan rules.

A link class is links with the same child level, rate and admitted share. The
session shape is a multi-site meeting: the link's child site (plus
`sites_below - 1` more sites beneath it) and two sites beyond the link, so
the child receives the full program (2 video + 1 audio). Where the full program does not fit a
link at all (a 2 Mbit/s mobile or satellite link), the richest smaller layout that does (the
speaker only, then audio only: rooms/plan.py Layout) is shown as a row of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rooms.ids import Direction, LinkId, PlanKind, SiteId
from rooms.plan import RICHEST_FIRST, Layout, media_plan
from rooms.topology import Link, Topology


@dataclass(frozen=True)
class CapacityRow:
    level: str
    rate_kbps: int
    limit_kbps: int
    links: int
    example: LinkId
    rooms: int
    profile: str
    plan: PlanKind
    up_kbps: int
    down_kbps: int
    sessions: int  # concurrent sessions the link admits
    binding: str  # "up" | "down" | "both" | "-"
    how: str
    layout: str = Layout.FULL.value  # what the link's site receives

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, PlanKind) else v) for k, v in self.__dict__.items()}


def _descendants(topo: Topology, site: SiteId) -> list[SiteId]:
    out: list[SiteId] = []
    stack = list(topo.children[site])
    while stack:
        s = stack.pop(0)
        out.append(s)
        stack.extend(topo.children[s])
    return out


def _beyond(topo: Topology, link: Link) -> list[SiteId]:
    """Two participants on the far side of the link, preferring the root's side."""
    outside = [s for s in topo.sites if not topo.in_subtree(s, link.child)]
    return outside[:2]


def capacity(topo: Topology, profiles: list[str] | None = None, plans: list[PlanKind] | None = None,
             sites_below: int = 1) -> list[CapacityRow]:
    classes: dict[tuple[str, int, float], list[Link]] = {}
    for link in topo.links.values():
        classes.setdefault((topo.sites[link.child].level, link.rate_kbps, link.admitted_share), []).append(link)
    rows: list[CapacityRow] = []
    for (level, rate, _share), links in sorted(classes.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        link = links[0]
        below = [link.child, *_descendants(topo, link.child)][:max(1, sites_below)]
        sites = [*below, *_beyond(topo, link)]
        for pname in profiles or [p.name for p in topo.profiles]:
            profile = topo.profile(pname)
            if profile is None:
                raise ValueError(f"unknown profile {pname!r}")
            for plan in plans or list(PlanKind):
                for layout in RICHEST_FIRST:
                    row = _row(topo, link, len(links), level, rate, profile, pname, plan, sites, layout)
                    if layout is Layout.FULL or row.sessions > 0:
                        rows.append(row)
                    if row.sessions > 0 or not profile.has_video:
                        break  # the full program fits (or a smaller layout is the richest that does)
    return rows


def format_capacity(rows: list[CapacityRow]) -> str:
    """The table; a link class and profile whose plans give the same figures is one row, plan "both"."""
    head = (f"{'link class':<28} {'limit':>9} {'profile':<8} {'layout':<8} {'plan':<8} {'up':>7} {'down':>7} "
            f"{'sessions':>8}  binds  how")
    lines = [head, "-" * len(head)]
    shown: list[tuple[CapacityRow, str]] = []
    first: dict[tuple[str, int, int, str], int] = {}
    for i, r in enumerate(rows):
        first.setdefault((r.level, r.rate_kbps, r.links, r.profile), i)
    order = [x.value for x in RICHEST_FIRST]
    rows = sorted(rows, key=lambda r: (first[(r.level, r.rate_kbps, r.links, r.profile)], order.index(r.layout)))
    for r in rows:
        prev = shown[-1][0] if shown else None
        if prev is not None and (prev.level, prev.rate_kbps, prev.links, prev.profile, prev.layout) == \
                (r.level, r.rate_kbps, r.links, r.profile, r.layout) \
                and (prev.up_kbps, prev.down_kbps, prev.sessions, prev.binding, prev.how) == (r.up_kbps, r.down_kbps, r.sessions, r.binding, r.how):
            shown[-1] = (prev, "both")
            continue
        shown.append((r, r.plan.value))
    for r, plan in shown:
        cls = f"{r.level} {r.rate_kbps / 1000:g} Mbit/s x{r.links}"
        lines.append(f"{cls:<28} {r.limit_kbps:>9} {r.profile:<8} {r.layout:<8} {plan:<8} {r.up_kbps:>7} {r.down_kbps:>7} "
                     f"{r.sessions:>8}  {r.binding:<5}  {r.how}")
    lines.append("kbit/s per direction; limit = rate x admitted share; plan both: central and cascade give the same; "
                 "layout: what the link's site receives (full program, the speaker only, audio only). "
                 "A site's rooms also cap its concurrent sessions (a county has 2).")
    return "\n".join(lines)


def _row(topo: Topology, link: Link, links: int, level: str, rate: int, profile: Any, pname: str, plan: PlanKind,
         sites: list[SiteId], layout: Layout) -> CapacityRow:
    mp = media_plan(topo, profile, plan, sites, layouts={link.child: layout})
    up, down = mp.load(link.id, Direction.UP), mp.load(link.id, Direction.DOWN)
    fits = {d: (link.limit_kbps // load if load else None) for d, load in ((Direction.UP, up), (Direction.DOWN, down))}
    bound = [(n, d) for d, n in fits.items() if n is not None]
    n, worst = min(bound, key=lambda x: (x[0], x[1] == Direction.UP)) if bound else (0, None)
    binding = "-" if worst is None else ("both" if up == down else worst.value)
    streams = next((x.streams for x in mp.loads if x.link == link.id and x.direction == worst), "")
    how = (f"{worst.value}: {streams} = {mp.load(link.id, worst)} kbit/s a session; "
           f"{link.limit_kbps} // {mp.load(link.id, worst)} = {n}") if worst else "no load"
    return CapacityRow(level, rate, link.limit_kbps, links, link.id, len(topo.sites[link.child].rooms), pname, plan,
                       up, down, n, binding, how, layout.value)
