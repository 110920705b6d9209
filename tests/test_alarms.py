"""Alarms: hysteresis as a state machine, thresholds per link class and site, the rules over real figures' shapes."""
from __future__ import annotations

import pytest

from dataclasses import replace

from monitoring.alarm_config import AlarmConfigError, Hysteresis, load_config, parse_config
from monitoring.alarm_rules import Absence, absence_observations, absences, leg_observations, link_observations
from monitoring.alarms import AlarmEngine, AlarmKind, Observation
from media.contracts.node import SESSIONS, SessionFigures
from monitoring.pipeline import LegSample
from rooms.topology import demo_topology


def held(sample: LegSample, n: int = 5) -> list[LegSample]:
    """A full window of one sample held for n rounds."""
    return [replace(sample, t=sample.t + 3 * i) for i in range(n)]


def loss(value: float, subject: str = "s/cc-nongan") -> Observation:
    return Observation(AlarmKind.LOSS, subject, value, 2.0, 1.5, f"{value} % loss")


def test_an_alarm_raises_after_two_samples_beyond_and_clears_after_two_back_within():
    e = AlarmEngine(Hysteresis(raise_samples=2, clear_samples=2, clear_ratio=0.75))
    events = [[(x.event, x.value) for x in e.step([loss(v)], t)] for t, v in enumerate([1, 3, 3, 1.8, 3, 1, 1, 1])]
    # one sample beyond: pending; two: raised; 1.8 is below the threshold but above the clear level: still raised
    assert events == [[], [], [("raised", 3)], [], [], [], [("cleared", 1)], []]
    assert e.transitions == [("s/cc-nongan", "ok", "pending"), ("s/cc-nongan", "pending", "raised"),
                             ("s/cc-nongan", "raised", "clearing"), ("s/cc-nongan", "clearing", "ok")]


def test_a_value_wavering_at_the_threshold_raises_once_and_a_single_spike_never():
    e = AlarmEngine(Hysteresis())
    assert [ev for t, v in enumerate([3, 1, 3, 1, 3, 1]) for ev in e.step([loss(v)], t)] == []  # spikes: pending, back
    raised = [ev for t, v in enumerate([3, 3, 1.9, 2.5, 1.9, 3]) for ev in e.step([loss(v)], t)]
    assert [x.event for x in raised] == ["raised"]  # wavering between 1.9 and 3: never cleared, never raised twice


def test_a_subject_no_longer_observed_clears_and_immediate_alarms_skip_the_count():
    e = AlarmEngine(Hysteresis())
    e.step([loss(5)], 0)
    assert [x.event for x in e.step([loss(5)], 1)] == ["raised"]
    gone = e.step([], 2)  # the leg left
    assert [(x.event, x.value) for x in gone] == [("cleared", None)]
    down = Observation(AlarmKind.NODE_DOWN, "node-cc", 6, 0, 0, "down", immediate=True)
    assert [x.event for x in e.step([down], 3)] == ["raised"]
    assert [x.event for x in e.step([], 4)] == ["cleared"]


def test_mos_raises_below_its_threshold():
    e = AlarmEngine(Hysteresis(raise_samples=1, clear_samples=1))
    mos = lambda v: Observation(AlarmKind.MOS, "s/x", v, 3.6, 3.8, "mos", below=True)  # noqa: E731
    assert [x.event for x in e.step([mos(3.0)], 0)] == ["raised"]
    assert e.step([mos(3.7)], 1) == []  # above the threshold, below the clear level
    assert [x.event for x in e.step([mos(4.2)], 2)] == ["cleared"]


def test_thresholds_follow_the_link_class_then_the_site_and_a_high_delay_link_expects_its_delay():
    topo = demo_topology()
    cfg = parse_config({"link_class": {"county": {"loss_pct": 4}}, "sites": {"cc-nongan": {"jitter_ms": 50}}})
    from monitoring.alarm_rules import thresholds
    nongan = thresholds(cfg, topo, "cc-nongan")  # `jitter_ms`, one figure, sets audio's and video's
    assert (nongan.loss_pct, nongan.jitter_audio_ms, nongan.jitter_video_ms, nongan.rtt_ms) == (4, 50, 50, 300)
    assert thresholds(cfg, topo, "jl").loss_pct == 2
    vehicle = next(s for s in topo.sites.values() if s.rtt_ms)
    t = thresholds(cfg, topo, vehicle.id)
    assert t.rtt_ms == 300 + vehicle.rtt_ms and t.mos < 3.6  # the satellite's own delay is not an alarm
    # what that vehicle measures on a good day: its declared RTT, no loss, and the MOS that delay gives
    from monitoring.emodel import OPUS, audio_mos
    good_day = LegSample(0, "s", "node-jl", vehicle.id, "webrtc", 500, 1000, 0.0, 5.0, float(vehicle.rtt_ms), 25, "640x360",
                         0, audio_mos(OPUS, 0, vehicle.rtt_ms / 2 + 40), 4.5)
    assert not [o for o in leg_observations(cfg, topo, [held(good_day)]) if o.beyond()]
    county_same = LegSample(0, "s", "node-cc", "cc-nongan", "webrtc", 500, 1000, 0.0, 5.0, float(vehicle.rtt_ms), 25,
                            "640x360", 0, good_day.mos, 4.5)
    assert {o.kind for o in leg_observations(cfg, topo, [held(county_same)]) if o.beyond()} == {AlarmKind.RTT, AlarmKind.MOS}


def test_messages_name_sites_and_links_as_people_do():
    topo = demo_topology()
    cfg = parse_config(None)
    leg = LegSample(0, "s", "node-cc", "cc-nongan", "webrtc", 500, 1000, 7.5, 12.0, 40.0, 25, "640x360", 0, 3.1, 3.0)
    msgs = {o.kind: o.message for o in leg_observations(cfg, topo, [held(leg)])}
    assert msgs[AlarmKind.LOSS] == (f"{topo.sites['cc-nongan'].name}: 7.5 % packet loss (median of 5 samples; "
                                    "alarm above 2 %)")
    row = {"link": "cc-nongan", "from": "cc-nongan", "to": "cc", "direction": "down", "live_kbps": 9500.0,
           "reserved_kbps": 3000, "rate_kbps": 10000}
    obs = {o.kind: o for o in link_observations(cfg, topo, [row])}
    assert obs[AlarmKind.OVER_RATE].beyond() and obs[AlarmKind.OVER_RESERVED].beyond()
    assert obs[AlarmKind.OVER_RATE].message.startswith(f"{topo.sites['cc'].name} → {topo.sites['cc-nongan'].name}: 9,500")


def test_a_booked_site_absent_five_minutes_into_its_occurrence_raises_at_once():
    topo = demo_topology()
    session = {"id": "s1", "title": "Flood drill", "sites": [{"site": "jl"}, {"site": "cc-nongan"}],
               "occurrences": [{"start": "2026-11-30T10:00:00+00:00", "end": "2026-11-30T11:00:00+00:00"}]}
    from datetime import datetime
    start = datetime.fromisoformat("2026-11-30T10:00:00+00:00").timestamp()
    assert absences([session], {("s1", "jl")}, start + 60) == [Absence("s1", "Flood drill", "cc-nongan", 60)]
    assert absences([session], {("s1", "jl")}, start + 3600) == []  # over
    early, late = (absence_observations(parse_config(None), topo, absences([session], {("s1", "jl")}, start + t))
                   for t in (60, 301))
    assert not early[0].beyond() and late[0].beyond() and "has not joined “Flood drill”" in late[0].message


@pytest.mark.parametrize("doc, says", [
    ({"defaults": {"loss_pct": "two"}}, "defaults.loss_pct: expected a number"),
    ({"defaults": {"los_pct": 2}}, "defaults.los_pct: unknown threshold"),
    ({"sites": {"nowhere": {"loss_pct": 1}}}, "sites.nowhere: not a site"),
    ({"hysteresis": {"raise_samples": 0}}, "hysteresis.raise_samples: expected a whole number"),
    ({"window": {"samples": 2.5}}, "window.samples: expected a whole number"),
    ({"window": {"percentile": 0}}, "window.percentile: expected a number above 0"),
    ({"window": {"seconds": 30}}, "window.seconds: unknown threshold"),
    ({"webhooks": [{"url": "ftp://x"}]}, "webhooks[0]"),
    ({"webhook": []}, "unknown key(s): webhook"),
    ([1, 2], "must be a mapping"),
])
def test_a_malformed_configuration_is_refused_naming_the_key(doc, says):
    with pytest.raises(AlarmConfigError, match=None) as err:
        parse_config(doc, set(demo_topology().sites))
    assert says in str(err.value)


def test_the_configuration_file_loads_or_says_why_not(tmp_path):
    good = tmp_path / "alarms.yaml"
    good.write_text("defaults: {loss_pct: 3}\nwebhooks: [{url: 'http://127.0.0.1:9/hook', retries: 1}]\n")
    cfg = load_config(good)
    assert cfg.defaults.loss_pct == 3 and cfg.webhooks[0].retries == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: [loss_pct\n")
    with pytest.raises(AlarmConfigError, match="not YAML"):
        load_config(bad)
    with pytest.raises(AlarmConfigError, match="No such file"):
        load_config(tmp_path / "missing.yaml")


def test_the_dashboard_marks_only_figures_past_the_sites_own_thresholds():
    from monitoring.dashboard import beyond, grade
    topo = demo_topology()
    cfg = parse_config(None)
    vehicle = LegSample(0, "s", "node-jl", "jl-vehicle", "webrtc", 500, 900, 0.0, 5.0, 600.0, 25, "640x360", 0, 3.5, 4.5)
    county = LegSample(0, "s", "node-cc", "cc-nongan", "webrtc", 500, 900, 3.0, 5.0, 600.0, 25, "640x360", 0, 3.5, 4.5)
    assert beyond(cfg, topo, vehicle) == [] and grade(cfg, topo, vehicle) != "poor"  # its 600 ms is expected
    assert beyond(cfg, topo, county) == ["loss_pct", "rtt_ms", "mos"] and grade(cfg, topo, county) == "poor"


def _leg_figures(audio_jitter: float | None, video_jitter: float | None, k: int) -> list[SessionFigures]:
    """A node's figures for Nong'an's leg `k` samples in: clean counters, the given jitter by medium (or, with
    video None, one figure for both as a node that does not tell them apart reports it)."""
    leg = {"site": "cc-nongan", "state": "connected", "bytes_in": {"audio": 12_000 * k, "video": 300_000 * k}, "bytes_forwarded": 600_000 * k,
           "frames_in": {"video": 90 * k}, "packets_lost": 0, "packets_received": 330 * k, "rtt_ms": 20.0,
           "resolution": "1280x720", "jitter_ms": max(x for x in (audio_jitter, video_jitter) if x is not None)}
    if video_jitter is not None:
        leg["jitter_ms_by_kind"] = {"audio": audio_jitter, "video": video_jitter}
    return SESSIONS.validate_python([{"session": "s", "host": "jl", "node": "node-cc", "legs": [leg]}])


def _jitter_events(series: list[tuple[float | None, float | None]], cfg=None) -> list[tuple[int, str, str]]:
    """Round by round through the real pipeline, windows and engine: (round, event, kind) of every jitter event."""
    from monitoring.alarm_window import leg_windows
    from monitoring.pipeline import QualityPipeline
    cfg, topo = cfg or parse_config(None), demo_topology()
    pipeline, engine, out = QualityPipeline(), AlarmEngine(cfg.hysteresis), []
    pipeline.sample(_leg_figures(*series[0], 0), 0.0)
    for k, (audio, video) in enumerate(series, start=1):
        pipeline.sample(_leg_figures(audio, video, k), 3.0 * k)
        obs = leg_observations(cfg, topo, leg_windows(pipeline, cfg.window.samples))
        out += [(k, e.event, e.kind.value) for e in engine.step(obs, 3.0 * k) if "jitter" in e.kind.value]
    return out


def test_one_jitter_spike_raises_nothing_and_jitter_held_over_the_window_does():
    calm, spike = (10.0, 20.0), (150.0, 400.0)
    assert _jitter_events([calm] * 6 + [spike] + [calm] * 8) == []  # one sample far beyond both: nothing
    assert _jitter_events([calm] * 6 + [spike, spike] + [calm] * 8) == []  # two of five: still the minority
    held_events = _jitter_events([calm] * 6 + [spike] * 8 + [calm] * 10)
    # spikes from round 7: three of the last five (round 9) make the median beyond; hysteresis wants two such
    # rounds. Calm from round 15: three of five at round 17, and the second round back within clears
    assert held_events == [(10, "raised", "leg_jitter_audio"), (10, "raised", "leg_jitter_video"),
                           (18, "cleared", "leg_jitter_audio"), (18, "cleared", "leg_jitter_video")]


def test_audio_is_judged_by_the_e_models_tolerance_and_video_by_its_own():
    from monitoring.alarm_config import AUDIO_JITTER_MS, VIDEO_JITTER_MS
    from monitoring.emodel import DELAY_KNEE_MS
    assert AUDIO_JITTER_MS == (DELAY_KNEE_MS - 40) / 2 == 68.65 and VIDEO_JITTER_MS == 90
    # what raised on every loopback leg under CPU load: 40 ms of jitter, held; within both media's tolerance now
    assert _jitter_events([(40.0, 40.0)] * 12) == []
    # 80 ms is beyond audio's tolerance, within video's: only the audio alarm
    assert {k for _, _, k in _jitter_events([(80.0, 80.0)] * 12)} == {"leg_jitter_audio"}
    assert {k for _, _, k in _jitter_events([(10.0, 120.0)] * 12)} == {"leg_jitter_video"}
    # one figure for both (their maximum): beyond the larger threshold only, so it is surely one medium's fault
    assert _jitter_events([(80.0, None)] * 12) == []
    assert {k for _, _, k in _jitter_events([(120.0, None)] * 12)} == {"leg_jitter"}
    # both are the alarm file's to set
    strict = parse_config({"defaults": {"jitter_audio_ms": 30}, "window": {"samples": 3, "percentile": 90}})
    assert strict.window.samples == 3 and strict.defaults.jitter_video_ms == 90
    assert {k for _, _, k in _jitter_events([(40.0, 40.0)] * 12, strict)} == {"leg_jitter_audio"}


def test_a_site_that_joined_and_left_is_not_absent_and_one_that_never_joined_is():
    topo = demo_topology()
    session = {"id": "s1", "title": "Flood drill", "sites": [{"site": "jl"}, {"site": "cc-nongan"}, {"site": "cc-yushu"}],
               "occurrences": [{"start": "2026-11-30T10:00:00+00:00", "end": "2026-11-30T11:00:00+00:00"}]}
    from datetime import datetime
    start = datetime.fromisoformat("2026-11-30T10:00:00+00:00").timestamp()
    joined = {("s1", "jl"), ("s1", "cc-nongan")}  # Nong'an joined at 10:02 and left at 10:04: it joined
    obs = absence_observations(parse_config(None), topo, absences([session], joined, start + 600))
    assert [(o.subject, o.beyond()) for o in obs] == [("s1/cc-yushu", True)]
    assert obs[0].message == f"{topo.sites['cc-yushu'].name} has not joined “Flood drill”, 10 min after its start"
