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
"""
from __future__ import annotations

from dataclasses import dataclass

R0_MINUS_IS = 93.2


@dataclass(frozen=True)
class Codec:
    name: str
    ie: float  # equipment impairment
    bpl: float  # packet-loss robustness


G711 = Codec("PCMU/PCMA", 0.0, 25.1)
OPUS = Codec("opus", 0.0, 20.0)


def delay_impairment(one_way_ms: float) -> float:
    d = max(0.0, one_way_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


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
