"""Audio quality as a MOS, by the ITU-T G.107 E-model in its common simplified form: pure functions.

    R = R0 - Is - Id - Ie,eff + A, with the default R0 - Is = 93.2 (G.107 Table 3 defaults:
    R0 = 94.77, Is = 1.41) and A = 0 (no advantage factor for fixed networks).
    Id, the delay impairment from the one-way mouth-to-ear delay d (ms), in the simplification of
    Cole & Rosenbluth (2001), "Voice over IP performance monitoring", ACM SIGCOMM CCR 31(2):
        Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)
    Ie,eff, the equipment impairment with random packet loss Ppl (%), G.107 eq. 7-29:
        Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl), BurstR = 1 for random loss.
    MOS from R, G.107 Annex B (B-4): 1 for R < 0, 4.5 for R > 100, else
        MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6

Codec constants (Ie, Bpl): G.711 from ITU-T G.113 Appendix I (Ie = 0; Bpl = 25.1 with packet loss
concealment, as the gateway's jitter buffer conceals). Opus has no G.113 entry: at 64 kbit/s it is
transparent on the E-model's narrowband scale, so Ie = 0, and its built-in concealment is taken at
Bpl = 20, G.113's figure for PLC-equipped codecs of its class (AMR-WB at 12.65: Bpl = 20).

Jitter has no term of its own in the E-model: a jitter buffer absorbs jitter up to its depth, and
that depth is delay, charged by Id (beyond the depth, packets arrive too late: loss, charged by Ie,eff).
Id charges 0.024 R per ms up to its knee at 177.3 ms one way, then 0.134 R per ms (5.6 times steeper).
So the jitter audio tolerates is what a buffer can absorb before the mouth-to-ear delay reaches the
knee: (177.3 - one-way delay without the buffer's growth) / 2, the 2 because an adaptive buffer is
sized at about twice RFC 3550's interarrival jitter (a smoothed mean deviation, about 1.13 sigma of
Gaussian transit variation) to hold the late tail. With the pipeline's 40 ms playout on a terrestrial
leg: (177.3 - 40) / 2 = 68.65 ms.
"""
from __future__ import annotations

from dataclasses import dataclass

R0_MINUS_IS = 93.2
DELAY_KNEE_MS = 177.3  # where Id turns steep (Cole & Rosenbluth)
BUFFER_PER_JITTER = 2.0  # an adaptive jitter buffer's depth per ms of RFC 3550 interarrival jitter


@dataclass(frozen=True)
class Codec:
    name: str
    ie: float  # equipment impairment
    bpl: float  # packet-loss robustness


G711 = Codec("PCMU/PCMA", 0.0, 25.1)
OPUS = Codec("opus", 0.0, 20.0)


def delay_impairment(one_way_ms: float) -> float:
    d = max(0.0, one_way_ms)
    return 0.024 * d + (0.11 * (d - DELAY_KNEE_MS) if d > DELAY_KNEE_MS else 0.0)


def jitter_tolerance_ms(one_way_ms: float) -> float:
    """The interarrival jitter (RFC 3550) audio tolerates on a leg whose mouth-to-ear delay is `one_way_ms`
    before its jitter buffer grows: the buffer may deepen until the delay reaches Id's knee."""
    return max(0.0, (DELAY_KNEE_MS - one_way_ms) / BUFFER_PER_JITTER)


def effective_equipment_impairment(codec: Codec, loss_pct: float, burst_ratio: float = 1.0) -> float:
    ppl = min(100.0, max(0.0, loss_pct))
    return codec.ie + (95 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)


def r_factor(codec: Codec, loss_pct: float, one_way_ms: float) -> float:
    return R0_MINUS_IS - delay_impairment(one_way_ms) - effective_equipment_impairment(codec, loss_pct)


def mos_from_r(r: float) -> float:
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def audio_mos(codec: Codec, loss_pct: float, one_way_ms: float) -> float:
    """MOS-CQE (conversational quality, 1..4.5) of an audio stream."""
    return round(mos_from_r(r_factor(codec, loss_pct, one_way_ms)), 2)
