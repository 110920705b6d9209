"""A video quality score, 1 (bad) .. 5 (excellent), from what the node sees of a stream: pure.

There is no standard no-reference score that works from forwarding counters alone (ITU-T P.1203
needs the bitstream's quantisers), so this one is built from the four things a viewer notices,
each a factor in 0..1 multiplied together, then mapped onto 1..5:

- smoothness: delivered fps / nominal fps (30), capped at 1;
- freezes: 0.85 per freeze (> 200 ms without a frame) in the sampled interval, so two freezes in a
  few seconds already read as "poor";
- loss: 1 - 4 x loss fraction (5 % loss halves... 25 % loss is unwatchable), floored at 0;
- sharpness: delivered pixels / the profile's pixels, square-rooted (540p of a 720p profile is 0.75),
  capped at 1 (unknown resolution counts as 1: no evidence against it).

score = 1 + 4 x smoothness x 0.85^freezes x loss_factor x sharpness.
"""
from __future__ import annotations

import math

NOMINAL_FPS = 30.0


def video_score(fps: float, freezes: int, loss_pct: float, pixels: int | None, profile_pixels: int | None) -> float:
    smooth = min(1.0, max(0.0, fps / NOMINAL_FPS))
    frozen = 0.85 ** max(0, freezes)
    lossy = max(0.0, 1 - 4 * max(0.0, loss_pct) / 100)
    sharp = 1.0
    if pixels and profile_pixels:
        sharp = min(1.0, math.sqrt(pixels / profile_pixels))
    return round(1 + 4 * smooth * frozen * lossy * sharp, 2)
