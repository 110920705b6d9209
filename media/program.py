"""Which sites each site sees and hears: a pure decision, tested with synthetic inputs.

Each site receives two video streams (the host's and the current speaker's,
never its own) and one audio stream (the speaker's). Without a speaker yet,
the most recent other arrival stands in.
"""
from __future__ import annotations

from dataclasses import dataclass

from rooms.ids import SiteId

VIDEO_SLOTS = 2


@dataclass(frozen=True)
class Program:
    video: tuple[SiteId | None, ...]
    audio: SiteId | None


def program_for(site: SiteId, host: SiteId, present: list[SiteId], speaker: SiteId | None) -> Program:
    """`present` in join order."""
    others = [s for s in present if s != site]
    ranked: list[SiteId] = []
    for s in ([host] if host in others else []) + ([speaker] if speaker in others else []) + others[::-1]:
        if s not in ranked:
            ranked.append(s)
    video = tuple(ranked[:VIDEO_SLOTS]) + (None,) * max(0, VIDEO_SLOTS - len(ranked))
    audio = speaker if speaker in others else (ranked[0] if ranked else None)
    return Program(video, audio)
