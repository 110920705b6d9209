"""What must cross between two media nodes of a cascade: a pure decision over the session ranking.

A trunk joins a child node (a prefecture's) to its parent (the province's). Down it
carries the streams from outside the child's sites that some site attached below needs;
up, the streams of the child's sites that some site outside needs. With every program
drawn from one session ranking (media/program.py), each set holds at most two videos and
one audio: what rooms/plan.py reserves on that link.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from media.program import SessionRanking, program_of, within_layout
from rooms.ids import SiteId


@dataclass(frozen=True)
class Crossing:
    video: frozenset[SiteId]
    audio: frozenset[SiteId]


def trunk_crossings(ranking: SessionRanking, present: list[SiteId], below: set[SiteId],
                    layouts: Mapping[SiteId, str | None] | None = None) -> tuple[Crossing, Crossing]:
    """(down, up) for the trunk above the sites in `below` (those attached to the child node). A site
    whose layout gives it less (the speaker only, audio only) pulls only that across: a trunk to
    thin sites carries what they take, as the plan reserves."""
    layouts = layouts or {}
    down_v: set[SiteId] = set()
    down_a: set[SiteId] = set()
    up_v: set[SiteId] = set()
    up_a: set[SiteId] = set()
    for site in present:
        program = within_layout(program_of(site, ranking), layouts.get(site))
        wanted_v = {s for s in program.video if s is not None}
        wanted_a = {program.audio} if program.audio is not None else set()
        if site in below:
            down_v |= wanted_v - below
            down_a |= wanted_a - below
        else:
            up_v |= wanted_v & below
            up_a |= wanted_a & below
    return Crossing(frozenset(down_v), frozenset(down_a)), Crossing(frozenset(up_v), frozenset(up_a))
