"""A leg's figure judged over a window of its samples, not on one: pure.

The window is the leg's last `samples` samples since it (last) appeared. The figure judged is their
`percentile` by nearest rank, mirrored where lower is worse (MOS), so with the median one spike moves
nothing and a condition held for most of the window does. A window not yet full is not judged: a
leg's first seconds carry its start's burst.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from monitoring.pipeline import LegSample, QualityPipeline


def window(history: Iterable[LegSample], since: float, samples: int) -> list[LegSample]:
    """The last `samples` samples taken at or after `since` (when the leg appeared), oldest first; fewer
    when there are not yet as many (the caller does not judge those)."""
    mine = [s for s in history if s.t >= since]
    return mine[-samples:]


def nearest_rank(values: Sequence[float], percentile: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percentile / 100 * len(ordered))) - 1]


def judged(values: Iterable[float | None], percentile: float, below: bool = False) -> float | None:
    """The value a window stands for: its percentile (for `below` figures, the mirrored one); None if empty."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return nearest_rank(present, 100 - percentile if below else percentile)


def leg_windows(pipeline: QualityPipeline, samples: int) -> list[list[LegSample]]:
    """The window of every live leg (and trunk) the pipeline holds."""
    return [window(pipeline.history.get(k, ()), pipeline.first_seen.get(k, 0.0), samples) for k in pipeline.latest]
