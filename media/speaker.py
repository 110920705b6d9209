"""Who is speaking: a pure selector over audio levels, with hysteresis.

Levels are RFC 6464 values (the `ssrc-audio-level` RTP header extension):
0 is the loudest, 127 silence (-dBov). A new speaker takes over only after
being the loudest, by a margin, for `hold_s` — so a cough or crosstalk does
not flip everyone's video (each flip costs a key frame from the new source).
"""
from __future__ import annotations

from dataclasses import dataclass, field

SILENT_DBOV = 60  # quieter than -60 dBov is not speech
MAX_EARLIER = 8  # earlier speakers remembered (the program draws on the first one or two)


@dataclass
class SpeakerSelector:
    hold_s: float = 1.0
    margin_db: float = 6.0
    smoothing: float = 0.3  # weight of each new level in the running average
    speaker: str | None = None
    earlier: list[str] = field(default_factory=list)  # earlier speakers, most recent first
    _loudness: dict[str, float] = field(default_factory=dict)  # dB above silence, smoothed
    _candidate: str | None = None
    _since: float = 0.0

    def forget(self, site: str) -> None:
        self._loudness.pop(site, None)
        if self.speaker == site:
            self.speaker = None
        if site in self.earlier:
            self.earlier.remove(site)
        if self._candidate == site:
            self._candidate = None

    def feed(self, site: str, level: int, now: float) -> str | None:
        """Take one level; return the new speaker when the speaker changes, else None."""
        loud = max(0.0, SILENT_DBOV - min(127, max(0, level)))
        prev = self._loudness.get(site, 0.0)
        self._loudness[site] = prev + self.smoothing * (loud - prev)
        best = max(self._loudness, key=self._loudness.__getitem__)
        if self._loudness[best] <= 0.5 or best == self.speaker:
            self._candidate = None
            return None
        current = self._loudness.get(self.speaker, 0.0) if self.speaker else 0.0
        if self._loudness[best] < current + self.margin_db:
            self._candidate = None
            return None
        if best != self._candidate:
            self._candidate, self._since = best, now
            return None
        if now - self._since >= self.hold_s:
            if self.speaker is not None:
                self.earlier = [self.speaker, *(s for s in self.earlier if s not in (self.speaker, best))][:MAX_EARLIER]
            self.speaker, self._candidate = best, None
            return best
        return None
