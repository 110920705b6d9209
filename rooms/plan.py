"""Media plans: which node each site attaches to and what crosses every link.

Pure functions of (topology, profile, plan kind, participants). Loads are the
worst case over who speaks: every site receives the program (up to
PROGRAM_VIDEO_STREAMS video streams from other sites plus one audio stream)
and sends one main stream.

- central: one node at the root; each participant's legs cross every link on
  its path, so a link carries the sum of the send/receive streams of the
  participants below it.
- cascade: a node per prefecture (topology `cascade_levels`) plus the root; a
  participant's own leg crosses only the links up to its node; between nodes a
  link carries at most the program's streams each way, and only when there are
  participants on both sides.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from rooms.ids import Direction, LinkId, NodeId, PlanKind, SiteId
from rooms.profiles import MediaProfile
from rooms.topology import PROGRAM_VIDEO_STREAMS, Topology


class Layout(str, enum.Enum):
    """What one site receives: thin links (a 2 Mbit/s satellite) take a smaller program than the session's."""
    FULL = "full"  # the program: up to PROGRAM_VIDEO_STREAMS videos (host and speaker) and its audio
    SPEAKER = "speaker"  # the current speaker's video and the audio
    AUDIO = "audio"  # the audio only

    @property
    def videos(self) -> int:
        return {Layout.FULL: PROGRAM_VIDEO_STREAMS, Layout.SPEAKER: 1, Layout.AUDIO: 0}[self]


RICHEST_FIRST = (Layout.FULL, Layout.SPEAKER, Layout.AUDIO)


@dataclass(frozen=True)
class LinkLoad:
    link: LinkId
    direction: Direction
    kbps: int
    streams: str  # human summary, e.g. "2 video + 1 audio"


@dataclass(frozen=True)
class MediaPlan:
    kind: PlanKind
    profile: str
    attachments: dict[SiteId, NodeId]
    loads: tuple[LinkLoad, ...]
    node_legs: dict[NodeId, int]
    layouts: dict[SiteId, Layout] = field(default_factory=dict)  # sites that receive less than the full program

    def load(self, link: LinkId, direction: Direction) -> int:
        return sum(x.kbps for x in self.loads if x.link == link and x.direction == direction)

    def to_dict(self, topology: Topology) -> dict[str, Any]:
        by_link: dict[LinkId, dict[str, Any]] = {}
        for x in self.loads:
            link = topology.links[x.link]
            row = by_link.setdefault(x.link, {
                "link": x.link, "from": link.child, "to": link.parent,
                "rate_kbps": link.rate_kbps, "limit_kbps": link.limit_kbps,
                "up_kbps": 0, "down_kbps": 0, "up_streams": "", "down_streams": "",
            })
            row[f"{x.direction.value}_kbps"] = x.kbps
            row[f"{x.direction.value}_streams"] = x.streams
        return {
            "kind": self.kind.value,
            "profile": self.profile,
            "attachments": dict(self.attachments),
            "links": list(by_link.values()),
            "node_legs": dict(self.node_legs),
            "layouts": {s: l.value for s, l in self.layouts.items()},
        }


@dataclass(frozen=True)
class _Streams:
    video: int = 0
    audio: int = 0

    def __add__(self, other: "_Streams") -> "_Streams":
        return _Streams(self.video + other.video, self.audio + other.audio)

    def kbps(self, p: MediaProfile) -> int:
        return self.video * p.video_stream_kbps + self.audio * p.audio_stream_kbps

    def describe(self) -> str:
        parts = [f"{self.video} video"] if self.video else []
        if self.audio:
            parts.append(f"{self.audio} audio")
        return " + ".join(parts)


def _send(p: MediaProfile) -> _Streams:
    return _Streams(1 if p.has_video else 0, 1)


def _program_from(senders: int, p: MediaProfile, videos: int = PROGRAM_VIDEO_STREAMS) -> _Streams:
    """What a receiver gets when `senders` other sites could be on the program and it takes `videos`."""
    if senders <= 0:
        return _Streams()
    return _Streams(min(videos, senders) if p.has_video else 0, 1)


def media_plan(topo: Topology, profile: MediaProfile, kind: PlanKind, sites: Iterable[SiteId],
               attachments: Mapping[SiteId, NodeId] | None = None,
               layouts: Mapping[SiteId, Layout] | None = None) -> MediaPlan:
    """`attachments` overrides where sites attach (a fallback when a node is down): what that costs.
    `layouts` gives sites a smaller program than the session's (full by default); between nodes a link
    carries the most any site beyond it takes."""
    layouts = layouts or {}
    videos = lambda s: layouts.get(s, Layout.FULL).videos  # noqa: E731
    participants = list(dict.fromkeys(sites))
    n = len(participants)
    if attachments is not None:
        attach = {s: attachments[s] for s in participants}
    elif kind is PlanKind.CENTRAL:
        root = topo.root_node()
        attach = {s: root for s in participants}
    else:
        attach = {s: topo.cascade_node(s) for s in participants}
    node_site = {nid: node.site for nid, node in topo.nodes.items()}
    legs: dict[NodeId, int] = {}
    for s in participants:
        legs[attach[s]] = legs.get(attach[s], 0) + 1

    links = sorted({l for s in participants for l in topo.path(s)}, key=lambda l: (len(topo.path(topo.links[l].child)), l))
    loads: list[LinkLoad] = []
    for lid in links:
        child = topo.links[lid].child
        inside = [s for s in participants if topo.in_subtree(s, child)]
        # A participant whose node is above this link has its own leg across it.
        own_legs = [s for s in inside if not topo.in_subtree(node_site[attach[s]], child)]
        grouped = len(inside) - len(own_legs)
        up = _Streams()
        down = _Streams()
        for s in own_legs:
            up = up + _send(profile)
            down = down + _program_from(n - 1, profile, videos(s))
        beyond = n - grouped  # participants on the far side of this link's node group
        if grouped and beyond:
            group = [s for s in inside if s not in own_legs]
            far = [s for s in participants if s not in group]
            up = up + _program_from(grouped, profile, max(videos(s) for s in far))
            down = down + _program_from(beyond, profile, max(videos(s) for s in group))
            top = topo.cascade_node(child)
            parent_node = topo.cascade_node(topo.links[lid].parent)
            legs[top] = legs.get(top, 0) + 1
            legs[parent_node] = legs.get(parent_node, 0) + 1
        for direction, streams in ((Direction.UP, up), (Direction.DOWN, down)):
            if streams.kbps(profile):
                loads.append(LinkLoad(lid, direction, streams.kbps(profile), streams.describe()))
    return MediaPlan(kind, profile.name, attach, tuple(loads), legs,
                     {s: l for s, l in layouts.items() if s in attach and l is not Layout.FULL})


def thin_link_layouts(topo: Topology, profile: MediaProfile, kind: PlanKind, sites: Iterable[SiteId],
                      layouts: Mapping[SiteId, Layout] | None = None) -> dict[SiteId, Layout]:
    """The richest layouts that let this session alone fit every link: where the session by itself
    overloads a link (a 2 Mbit/s satellite link and a two-stream SD program), the sites behind that
    link step down (full → speaker only → audio only) until it fits or they are audio only. Other
    bookings play no part: this is what thin links can carry, not a way around a busy network."""
    chosen = dict(layouts or {})
    participants = list(dict.fromkeys(sites))
    for _ in range(len(RICHEST_FIRST) * max(1, len(participants))):
        plan = media_plan(topo, profile, kind, participants, layouts=chosen)
        # Only what a site receives can be made smaller: an uplink its own picture overloads stays so.
        over = {x.link for x in plan.loads if x.direction is Direction.DOWN and x.kbps > topo.links[x.link].limit_kbps}
        lowered = False
        for link in over:
            for s in participants:
                now = chosen.get(s, Layout.FULL)
                if topo.in_subtree(s, topo.links[link].child) and now is not Layout.AUDIO:
                    chosen[s] = RICHEST_FIRST[RICHEST_FIRST.index(now) + 1]
                    lowered = True
        if not lowered:
            break
    return {s: l for s, l in chosen.items() if l is not Layout.FULL}
