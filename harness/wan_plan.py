"""Which namespaces, links, addresses, routes and shaping an emulated copy of the WAN needs: a pure plan.

From a topology and a selection of sites (a prefecture and its counties; a few prefectures; the
whole province), the emulated tree holds the selected sites and every ancestor up to the root,
one network namespace per site. Each topology link becomes a veth pair between the child's and
the parent's namespaces, shaped per direction at the link's rate times `scale` (the child's end
shapes up, the parent's end shapes down), with half the site's `rtt_ms` of delay each way on
high-delay links (satellite, mobile). Link i is 10.201.i.0/24: parent .1, child .2. The root's
namespace reaches the harness (the default namespace, where the control plane listens) over an
unshaped link, 10.200.0.1 (harness) / 10.200.0.2 (root).
"""
from __future__ import annotations

from dataclasses import dataclass

from rooms.ids import SiteId
from rooms.topology import Topology

HARNESS_ADDR = "10.200.0.1"
ROOT_ADDR = "10.200.0.2"
QUEUE_MS = 100  # a router's buffer on the link, in time at the link's rate
MAX_NAMESPACES = 200


class SelectionError(ValueError):
    pass


@dataclass(frozen=True)
class EmulatedLink:
    index: int
    child: SiteId
    parent: SiteId
    rate_kbps: int  # scaled
    delay_ms: int  # one way
    child_dev: str
    parent_dev: str

    @property
    def parent_addr(self) -> str:
        return f"10.201.{self.index}.1"

    @property
    def child_addr(self) -> str:
        return f"10.201.{self.index}.2"


@dataclass(frozen=True)
class WanPlan:
    prefix: str
    scale: float
    root: SiteId
    namespaces: dict[SiteId, str]
    links: tuple[EmulatedLink, ...]

    def uplink(self, site: SiteId) -> EmulatedLink | None:
        return next((l for l in self.links if l.child == site), None)

    def address(self, site: SiteId) -> str:
        """Where a site's services listen: its uplink's child end (the root: its harness link)."""
        up = self.uplink(site)
        return ROOT_ADDR if up is None else up.child_addr

    def routes(self, site: SiteId) -> list[str]:
        """`ip route` arguments inside the site's namespace."""
        out = []
        up = self.uplink(site)
        if up is not None:
            out.append(f"default via {up.parent_addr} dev {up.child_dev}")
        else:
            out.append(f"default via {HARNESS_ADDR} dev {self.prefix}r")
        for link in self.links:
            if link.parent == site:
                continue  # directly connected
            hop = self._next_hop_down(site, link.child)
            if hop is not None:
                out.append(f"10.201.{link.index}.0/24 via {hop.child_addr} dev {hop.parent_dev}")
        return out

    def _next_hop_down(self, site: SiteId, below: SiteId) -> EmulatedLink | None:
        """The link from `site` towards `below`, if `below` is under `site`."""
        cur: SiteId | None = below
        while cur is not None:
            up = self.uplink(cur)
            if up is None:
                return None
            if up.parent == site:
                return up
            cur = up.parent
        return None


def plan_wan(topo: Topology, selection: list[str], scale: float, prefix: str,
             scale_above_kbps: int = 0, expand: bool = True, only: str | None = None) -> WanPlan:
    """Raises SelectionError naming what is wrong (unknown sites, a scale that is not in (0, 1]).

    `scale` applies to links faster than `scale_above_kbps` (0: every link): the backbone can be
    scaled to fit this machine while a county keeps its real 10 Mbit/s. `only`: scale that link alone."""
    if not isinstance(scale, (int, float)) or not 0 < scale <= 1:
        raise SelectionError(f"rate scale {scale!r}: give a factor above 0 and at most 1 (e.g. 0.1)")
    unknown = [s for s in selection if s not in topo.sites]
    if unknown:
        raise SelectionError(f"unknown sites: {', '.join(unknown)} (sites are ids such as jl, cc, cc-nongan)")
    if not selection:
        raise SelectionError("select at least one site (a prefecture brings its counties)")
    chosen: set[SiteId] = set()
    for s in selection:
        chosen.add(SiteId(s))
        if expand and s != topo.root:
            chosen.update(topo.children[SiteId(s)])  # a prefecture brings its counties
    for s in list(chosen):
        cur = topo.sites[s].parent
        while cur is not None:
            chosen.add(cur)
            cur = topo.sites[cur].parent
    if len(chosen) > MAX_NAMESPACES:
        raise SelectionError(f"{len(chosen)} sites: at most {MAX_NAMESPACES} namespaces")
    order = sorted(chosen, key=lambda s: (len(topo.path(s)), s))
    ns = {s: f"{prefix}-{i}" for i, s in enumerate(order)}
    links = []
    for s in order:
        link = topo.links.get(s)  # type: ignore[call-overload]
        if link is None:
            continue
        i = len(links) + 1
        rtt = topo.sites[s].rtt_ms or 0
        scaled = link.rate_kbps > scale_above_kbps and (only is None or s == only)
        rate = round(link.rate_kbps * scale) if scaled else link.rate_kbps
        links.append(EmulatedLink(i, s, link.parent, max(8, rate), rtt // 2,
                                  f"{prefix}u{i}", f"{prefix}d{i}"))
    return WanPlan(prefix, float(scale), topo.root, ns, tuple(links))


def tc_commands(link: EmulatedLink, end: str, netem: bool = True) -> list[str]:
    """`tc` arguments shaping one end (child: up, parent: down): TBF at the rate with a
    QUEUE_MS buffer (a round trip's on a high-delay link), and netem's delay under it on a high-delay
    link (when the kernel has netem)."""
    dev = link.child_dev if end == "child" else link.parent_dev
    rate = link.rate_kbps
    burst = max(3200, rate * 1000 // 8 // 100)  # 10 ms of bytes: smooth at the rate, room for one frame's packets
    # A high-delay link's modem buffers about a round trip at its rate (the bandwidth-delay product
    # rule); a wired router's QUEUE_MS would drop a satellite link's ordinary bursts.
    queue_ms = max(QUEUE_MS, 2 * link.delay_ms)
    limit = max(2 * burst, rate * 1000 // 8 * queue_ms // 1000)
    cmds = [f"qdisc add dev {dev} root handle 1: tbf rate {rate}kbit burst {burst} limit {limit}"]
    if link.delay_ms and netem:
        cmds.append(f"qdisc add dev {dev} parent 1:1 handle 10: netem delay {link.delay_ms}ms limit 100000")
    return cmds
