"""Which sites each site sees and hears: a pure decision, tested with synthetic inputs.

Every site of a session draws from one session-wide order (`SessionRanking`): video
from the host, the current speaker, earlier speakers (most recent first), then the
others (latest arrival first); audio from the speaker, earlier speakers, the host,
then the others. Each site takes the first two videos and the first audio that are
not its own. Because every site draws from the same order, the streams that must
cross between two media nodes are at most two videos and one audio each way —
exactly what the cascade plan reserves on the link between them (media/cascade.py
computes the crossing sets; tests/media/test_cascade_program.py holds them against
rooms/plan.py on random sessions).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rooms.ids import SiteId
from rooms.plan import Layout

VIDEO_SLOTS = 2


@dataclass(frozen=True)
class Program:
    video: tuple[SiteId | None, ...]
    audio: SiteId | None


@dataclass(frozen=True)
class SessionRanking:
    video: tuple[SiteId, ...]
    audio: tuple[SiteId, ...]


def session_ranking(host: SiteId, present: list[SiteId], speaker: SiteId | None,
                    earlier: Iterable[SiteId] = ()) -> SessionRanking:
    """`present` in join order; `earlier` speakers most recent first. Only present sites rank."""
    here = set(present)
    latest_first = present[::-1]
    spoke = [s for s in ([speaker] if speaker else []) + list(earlier) if s in here]
    return SessionRanking(
        video=_dedup(([host] if host in here else []) + spoke + latest_first),
        audio=_dedup(spoke + ([host] if host in here else []) + latest_first))


def program_of(site: SiteId, ranking: SessionRanking) -> Program:
    video = tuple(s for s in ranking.video if s != site)[:VIDEO_SLOTS]
    audio = next((s for s in ranking.audio if s != site), None)
    return Program(video + (None,) * (VIDEO_SLOTS - len(video)), audio)


def within_layout(program: Program, layout: Layout | None) -> Program:
    """What a site whose plan gives it less receives of its program: the speaker only is the site the
    program's audio follows (the speaker, or the host while nobody has spoken); audio only, no video."""
    if layout == Layout.SPEAKER:
        return Program((program.audio,) + (None,) * (len(program.video) - 1), program.audio)
    if layout == Layout.AUDIO:
        return Program((None,) * len(program.video), program.audio)
    return program


def program_for(site: SiteId, host: SiteId, present: list[SiteId], speaker: SiteId | None,
                earlier: Iterable[SiteId] = ()) -> Program:
    """`present` in join order."""
    return program_of(site, session_ranking(host, present, speaker, earlier))


def _dedup(items: list[SiteId]) -> tuple[SiteId, ...]:
    return tuple(dict.fromkeys(items))
