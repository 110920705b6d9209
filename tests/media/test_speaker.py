from media.speaker import SpeakerSelector


def feed(sel, t0, t1, levels, step=0.02):
    """Feed each site's level every 20 ms from t0 to t1; return the changes seen."""
    changes, t = [], t0
    while t < t1:
        for site, level in levels.items():
            if (new := sel.feed(site, level, t)) is not None:
                changes.append((round(t, 2), new))
        t += step
    return changes


def test_a_steady_talker_becomes_speaker_after_the_hold_time():
    sel = SpeakerSelector(hold_s=1.0)
    changes = feed(sel, 0, 3, {"cc": 20, "sp": 127})
    assert [s for _, s in changes] == ["cc"]
    assert 1.0 <= changes[0][0] <= 1.5


def test_a_short_burst_does_not_steal_the_floor():
    sel = SpeakerSelector(hold_s=1.0)
    feed(sel, 0, 3, {"cc": 20, "sp": 127})
    assert feed(sel, 3, 3.5, {"cc": 127, "sp": 10}) == []  # half a second of sp
    assert feed(sel, 3.5, 5, {"cc": 20, "sp": 127}) == [] and sel.speaker == "cc"


def test_the_floor_passes_when_someone_else_talks_long_enough_and_louder():
    sel = SpeakerSelector(hold_s=1.0, margin_db=6)
    feed(sel, 0, 3, {"cc": 30, "sp": 127})
    assert feed(sel, 3, 5, {"cc": 32, "sp": 30}) == []  # about as loud: no flip
    changes = feed(sel, 5, 8, {"cc": 127, "sp": 25})
    assert [s for _, s in changes] == ["sp"]


def test_silence_elects_nobody_and_a_leaving_speaker_is_forgotten():
    sel = SpeakerSelector()
    assert feed(sel, 0, 3, {"cc": 127, "sp": 127}) == [] and sel.speaker is None
    feed(sel, 3, 6, {"cc": 20, "sp": 127})
    sel.forget("cc")
    assert sel.speaker is None
