"""The E-model MOS and the video score: known points of the published curves, and monotonic where they must be."""
from __future__ import annotations

import pytest

from monitoring.emodel import G711, OPUS, audio_mos, delay_impairment, mos_from_r, r_factor
from monitoring.video_score import video_score


def test_e_model_known_points():
    assert r_factor(G711, 0, 0) == pytest.approx(93.2)
    assert audio_mos(G711, 0, 0) == pytest.approx(4.41, abs=0.01)  # G.711's best, the textbook 4.4
    assert mos_from_r(50) == pytest.approx(2.58, abs=0.01)  # G.107 Annex B at R = 50
    assert delay_impairment(150) == pytest.approx(3.6)
    assert delay_impairment(300) == pytest.approx(0.024 * 300 + 0.11 * (300 - 177.3))
    # the satellite vehicle's 600 ms round trip (300 ms one way) alone costs most of a point
    assert 3.4 < audio_mos(OPUS, 0, 300) < 3.9
    assert audio_mos(OPUS, 0, 600) < 2  # 600 ms one way: conversation breaks down


def test_mos_falls_with_loss_and_delay_and_opus_conceals_less_than_g711():
    assert audio_mos(G711, 1, 50) > audio_mos(G711, 3, 50) > audio_mos(G711, 10, 50)
    assert audio_mos(G711, 1, 50) > audio_mos(G711, 1, 400)
    assert audio_mos(OPUS, 2, 50) < audio_mos(G711, 2, 50)  # Bpl 20 < 25.1
    assert 1.0 <= audio_mos(OPUS, 100, 5000) <= 4.5


def test_video_score():
    assert video_score(30, 0, 0, 1280 * 720, 1280 * 720) == 5.0
    assert video_score(30, 0, 0, 960 * 540, 1280 * 720) == pytest.approx(4.0)  # sharpness 0.75
    assert video_score(15, 0, 0, None, None) == pytest.approx(3.0)
    assert video_score(30, 2, 0, None, None) < video_score(30, 1, 0, None, None) < 5
    assert video_score(30, 0, 25, None, None) == 1.0
    assert video_score(0, 0, 0, None, None) == 1.0
