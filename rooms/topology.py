"""The network as data: sites in a tree, their rooms, uplinks and media nodes.

`parse_topology(dict)` validates a document of the form of `rooms/data/jilin.yaml`
and reports every problem, each naming its site.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rooms.bulk import collector_paused
from rooms.email_address import EmailError, normalized_email
from rooms.ids import LinkId, NodeId, RoomId, SiteId
from rooms.profiles import DEFAULT_PROFILES, MediaProfile, ProfileError, parse_profiles
from rooms.topology_document import MAX_MBPS, document_problems

DEFAULT_ADMITTED_SHARE = 0.75
DEFAULT_CASCADE_LEVELS = ("prefecture",)
DEFAULT_ROOT_NODE_LEGS = 500
DEFAULT_NODE_LEGS = 100
PROGRAM_VIDEO_STREAMS = 2  # the host's video and the current speaker's
# Links from any site up to the root. The province's network is four or five levels deep; the bound
# keeps every site's path (Topology.path) short, so a 20,000-site chain is refused, not expanded.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Room:
    id: RoomId
    name: str


@dataclass(frozen=True)
class Site:
    id: SiteId
    level: str
    name: str
    parent: SiteId | None
    rooms: tuple[Room, ...]
    uplink_kbps: int | None = None
    rtt_ms: int | None = None
    name_zh: str | None = None
    contact: str | None = None  # an e-mail address: where the site's own invite goes

    @property
    def bookable_rooms(self) -> list[RoomId]:
        """Where a booking that names no room may meet, in order: the site's first room (its main), then
        the others but its emergency office, which only a booking that asks for it takes."""
        return [r.id for r in self.rooms if r.id != EMERGENCY_ROOM]


@dataclass(frozen=True)
class Link:
    """A site's uplink to its parent; rates are per direction (full duplex)."""

    id: LinkId
    child: SiteId
    parent: SiteId
    rate_kbps: int
    admitted_share: float

    @property
    def limit_kbps(self) -> int:
        return int(self.rate_kbps * self.admitted_share)


@dataclass(frozen=True)
class NodeSpec:
    """A media node as the topology plans it (media/node.py's MediaNode is the running one)."""
    id: NodeId
    site: SiteId
    capacity_legs: int


EMERGENCY_ROOM = RoomId("emergency")  # a site's emergency office: taken by a booking only when asked for
MAX_PROBLEMS = 100  # listed; a 20,000-site document can have 20,000, and the answer would be megabytes


class TopologyError(ValueError):
    def __init__(self, problems: list[str]):
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems"]
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class Topology:
    network: str
    name: str
    sites: dict[SiteId, Site]
    links: dict[LinkId, Link]
    nodes: dict[NodeId, NodeSpec]
    root: SiteId
    profiles: tuple[MediaProfile, ...] = DEFAULT_PROFILES
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    children: dict[SiteId, list[SiteId]] = field(default_factory=dict, repr=False)
    _paths: dict[SiteId, tuple[LinkId, ...]] = field(default_factory=dict, repr=False)
    _node_of: dict[SiteId, NodeId] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.children = {s: [] for s in self.sites}
        for s in self.sites.values():
            if s.parent is not None:
                self.children[s.parent].append(s.id)
        node_sites = {n.site: n.id for n in self.nodes.values()}
        for sid in self.sites:
            path: list[LinkId] = []
            cur: SiteId | None = sid
            node: NodeId | None = None
            while cur is not None:
                if node is None and cur in node_sites:
                    node = node_sites[cur]
                if self.sites[cur].parent is not None:
                    path.append(LinkId(cur))
                cur = self.sites[cur].parent
            self._paths[sid] = tuple(path)
            self._node_of[sid] = node if node is not None else node_sites[self.root]

    def profile(self, name: str) -> MediaProfile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def path(self, site: SiteId) -> tuple[LinkId, ...]:
        """Links from the site up to the root, nearest first."""
        return self._paths[site]

    def in_subtree(self, site: SiteId, top: SiteId) -> bool:
        """Is `site` at or below `top`? (its path passes through top's uplink, or it is top)."""
        return site == top or LinkId(top) in self._paths[site]

    def cascade_node(self, site: SiteId) -> NodeId:
        """The nearest media node at or above the site."""
        return self._node_of[site]

    def root_node(self) -> NodeId:
        return self._node_of[self.root]

    def to_dict(self) -> dict[str, Any]:
        return self.raw


def _as_kbps(value: Any) -> int | None:
    """Mbit/s as kbit/s; None for what the schema refused (not a finite positive number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_MBPS:
        return None
    return round(value * 1000)


def _parse_rooms(raw: Any, site: str, problems: list[str]) -> tuple[Room, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"site {site}: needs at least one room")
        return ()
    rooms: dict[str, Room] = {}  # by id: a duplicate is found in one look-up, not by scanning
    for r in raw:
        if not isinstance(r, Mapping) or not isinstance(r.get("id"), str) or not r["id"]:
            problems.append(f"site {site}: a room needs an id")
            continue
        if "/" in r["id"]:
            problems.append(f"site {site}: room id {r['id']!r} may not contain '/'")
            continue
        if r["id"] in rooms:
            problems.append(f"site {site}: room {r['id']} defined twice")
            continue
        rooms[r["id"]] = Room(RoomId(r["id"]), str(r.get("name", r["id"])))
    return tuple(rooms.values())


def _contact(value: Any) -> str | None:
    """The address in normal form; None when absent or refused (the schema has reported it)."""
    if not isinstance(value, str):
        return None
    try:
        return normalized_email(value)
    except EmailError:
        return None


def parse_topology(doc: Any) -> Topology:
    """Validate and build a topology; raise TopologyError listing every problem."""
    with collector_paused():  # tens of thousands of sites: objects in bulk
        return _parse_topology(doc)


def _parse_topology(doc: Any) -> Topology:
    if not isinstance(doc, Mapping):
        raise TopologyError(["topology: the document must be a mapping with a `sites:` list"])
    # Types and ranges first (the schema), then the tree; both reported together. Below, a
    # value the schema refused is skipped quietly: it is already in `problems`.
    problems = document_problems(doc)
    if any(not p.startswith(("site ", "sites[")) for p in problems):
        raise TopologyError(problems)  # the document's own fields are wrong: no tree to check
    raw_sites = doc.get("sites")
    if not isinstance(raw_sites, list) or not raw_sites:
        raise TopologyError(["topology: `sites:` must be a non-empty list"])
    default_rooms = doc.get("default_rooms") or {}
    # null stands for "not given" wherever the schema allows it (a JSON client sends every key)
    share_default = doc.get("admitted_share") or DEFAULT_ADMITTED_SHARE
    cascade_levels = tuple(doc.get("cascade_levels") or DEFAULT_CASCADE_LEVELS)
    try:
        profiles = parse_profiles(doc["profiles"]) if doc.get("profiles") is not None else DEFAULT_PROFILES
    except ProfileError as exc:
        raise TopologyError([str(exc)]) from None

    sites: dict[SiteId, Site] = {}
    shares: dict[SiteId, float] = {}
    node_legs: dict[SiteId, Any] = {}
    for i, s in enumerate(raw_sites):
        if not isinstance(s, Mapping) or not isinstance(s.get("id"), str) or not s["id"].strip():
            problems.append(f"sites[{i}]: needs an id")
            continue
        sid = SiteId(s["id"])
        if "/" in sid:
            problems.append(f"site {sid}: id may not contain '/'")
            continue
        if sid in sites:
            problems.append(f"site {sid}: id used twice")
            continue
        level = str(s.get("level", ""))
        parent = s.get("parent")
        if parent is not None and not isinstance(parent, str):
            problems.append(f"site {sid}: parent must be a site id")
            parent = None
        uplink = None
        if parent is not None:
            if "uplink_mbps" not in s:
                problems.append(f"site {sid}: needs uplink_mbps (the rate of its link to {parent})")
            else:
                uplink = _as_kbps(s["uplink_mbps"])
        elif "uplink_mbps" in s:
            problems.append(f"site {sid}: the root has no uplink, remove uplink_mbps")
        rooms_raw = s.get("rooms") if s.get("rooms") is not None else default_rooms.get(level)
        rooms = _parse_rooms(rooms_raw, sid, problems)
        share = s.get("admitted_share") if s.get("admitted_share") is not None else share_default
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            share = DEFAULT_ADMITTED_SHARE
        shares[sid] = float(share)
        if s.get("media_node_legs") is not None:
            node_legs[sid] = s["media_node_legs"]
        rtt = s.get("rtt_ms")
        sites[sid] = Site(
            id=sid, level=level, name=str(s.get("name") or sid), parent=SiteId(parent) if parent else None,
            rooms=rooms, uplink_kbps=uplink, rtt_ms=int(rtt) if isinstance(rtt, (int, float)) else None,
            name_zh=s.get("name_zh"), contact=_contact(s.get("contact")),
        )

    roots = [s.id for s in sites.values() if s.parent is None]
    if len(roots) != 1:
        problems.append(f"topology: needs exactly one root (a site without parent), found {len(roots)}: "
                        f"{_some(roots)}")
    for s in sites.values():
        if s.parent is not None and s.parent not in sites:
            problems.append(f"site {s.id}: parent {s.parent} does not exist")
        if s.parent == s.id:
            problems.append(f"site {s.id}: is its own parent")
    problems.extend(tree_problems(sites))
    if problems:
        raise TopologyError(problems)

    root = roots[0]
    links = {
        LinkId(s.id): Link(LinkId(s.id), s.id, s.parent, s.uplink_kbps or 0, shares[s.id])
        for s in sites.values() if s.parent is not None
    }
    nodes: dict[NodeId, NodeSpec] = {}
    for s in sites.values():
        if s.id == root or s.level in cascade_levels or s.id in node_legs:
            legs = node_legs.get(s.id, DEFAULT_ROOT_NODE_LEGS if s.id == root else DEFAULT_NODE_LEGS)
            if isinstance(legs, bool) or not isinstance(legs, int) or legs <= 0:
                continue  # the schema reported it
            nid = NodeId(f"node-{s.id}")
            nodes[nid] = NodeSpec(nid, s.id, legs)
    if problems:
        raise TopologyError(problems)
    return Topology(
        network=str(doc.get("network") or "network"), name=str(doc.get("name") or ""), sites=sites,
        links=links, nodes=nodes, root=root, profiles=profiles, raw=dict(doc),
    )


def tree_problems(sites: Mapping[SiteId, Site]) -> list[str]:
    """Loops in the parent links, and sites deeper than MAX_DEPTH, in one pass: each site is walked
    up once (colours: unseen; on the walk in progress; done, with its depth), so a document of n
    sites costs O(n) whatever its shape (the check it replaced walked every chain again: O(n^3) for
    a 2,000-site chain, minutes on the event loop). Each loop is reported once."""
    problems: list[str] = []
    depth: dict[SiteId, int] = {}  # done: links from the site up to the root (or to where its chain breaks)
    deepest: list[SiteId] = []
    for start in sites:
        if start in depth:
            continue
        walk: list[SiteId] = []
        on_walk: dict[SiteId, int] = {}  # the walk in progress: site -> its position in `walk`
        cur: SiteId | None = start
        while cur is not None and cur in sites and cur not in depth and cur not in on_walk:
            on_walk[cur] = len(walk)
            walk.append(cur)
            cur = sites[cur].parent
        if cur is not None and cur in on_walk:  # back on this walk: a loop (a self-parent is reported above)
            loop = walk[on_walk[cur]:]
            if len(loop) > 1:
                problems.append(f"site {loop[0]}: parent chain forms a cycle: {_loop(loop)}")
            for site in loop:
                depth[site] = 0  # no depth in a loop: counted from here, so the sites below are judged once
            walk = walk[:on_walk[cur]]
        below = depth.get(cur, -1) if cur is not None else -1  # the root's parent: -1, so the root is 0
        for site in reversed(walk):
            below += 1
            depth[site] = below
            if below == MAX_DEPTH + 1:
                deepest.append(site)
    if deepest:
        problems.append(f"site {deepest[0]}: more than {MAX_DEPTH} levels below the root (a network is "
                        f"province, prefecture, county and a few below); {len(deepest)} site(s) "
                        f"{MAX_DEPTH + 1} levels down: {_some(deepest)}")
    return problems


def _some(ids: list[SiteId], shown: int = 10) -> str:
    return str(ids) if len(ids) <= shown else f"{ids[:shown]} and {len(ids) - shown} more"


def _loop(loop: list[SiteId], shown: int = 10) -> str:
    if len(loop) <= shown:
        return " -> ".join(loop + [loop[0]])
    return f"{' -> '.join(loop[:shown])} -> ... ({len(loop)} sites) -> {loop[0]}"


def load_topology_file(path: str | Path) -> Topology:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopologyError([f"{path}: not valid YAML ({exc})"]) from None
    return parse_topology(doc)


def demo_topology_path() -> Path:
    return Path(str(resources.files("rooms") / "data" / "jilin.yaml"))


def demo_topology() -> Topology:
    return load_topology_file(demo_topology_path())
