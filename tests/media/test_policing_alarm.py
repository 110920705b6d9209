"""A site the node polices (media/policing.py) is reported: an alarm naming it, and a counter in /metrics,
through the real pipeline, windows, alarm engine and Prometheus rendering from the node's leg figures."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from media.contracts.node import SESSIONS
from monitoring.alarm_config import parse_config
from monitoring.alarm_rules import leg_observations
from monitoring.alarm_window import leg_windows
from monitoring.alarms import AlarmEngine, AlarmKind
from monitoring.metrics import render
from monitoring.pipeline import QualityPipeline
from rooms.topology import demo_topology


def _figures(k: int, policed: int | None) -> list:  # type: ignore[type-arg]
    leg = {"site": "cc-nongan", "state": "connected", "bytes_in": {"audio": 12_000 * k, "video": 300_000 * k},
           "bytes_forwarded": 600_000 * k, "frames_in": {"video": 90 * k}, "packets_lost": 0,
           "packets_received": 330 * k, "rtt_ms": 20.0, "resolution": "1280x720", "jitter_ms": 5.0}
    if policed is not None:
        leg["policed_frames"] = policed
    return SESSIONS.validate_python([{"session": "s", "host": "jl", "node": "node-cc", "legs": [leg]}])


def _run(policed: list[int | None]) -> tuple[QualityPipeline, list]:  # type: ignore[type-arg]
    cfg, topo = parse_config(None), demo_topology()
    pipeline, engine, events = QualityPipeline(), AlarmEngine(cfg.hysteresis), []
    for k, p in enumerate(policed):
        pipeline.sample(_figures(k, p), 3.0 * k)
        obs = leg_observations(cfg, topo, leg_windows(pipeline, cfg.window.samples))
        events += [(k, e) for e in engine.step(obs, 3.0 * k) if e.kind is AlarmKind.OVER_RESERVATION]
    return pipeline, events


def test_a_policed_site_raises_an_alarm_naming_it_and_clears_once_it_keeps_to_its_slot() -> None:
    rising = [0, 0, 10, 25, 40, 55, 70, 85, 100]
    flat = [100] * 8  # it came down: the count stops rising
    _, events = _run(rising + flat)
    raised = [e for _, e in events if e.event == "raised"]
    assert len(raised) == 1, raised
    assert raised[0].message.startswith("Nong'an County: sends above its reserved video rate; the node dropped")
    assert [e.event for _, e in events] == ["raised", "cleared"]


def test_a_site_within_its_slot_or_not_policed_raises_nothing() -> None:
    assert _run([0] * 10)[1] == []
    assert _run([None] * 10)[1] == []


def test_metrics_count_the_policed_frames_per_site() -> None:
    pipeline, _ = _run([0, 0, 10, 25])
    text = render(pipeline, lambda: {}, lambda: 0, lambda: {}).decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "confctl_leg_policed_frames")
    assert [(s.labels["site"], s.value) for s in family.samples if s.name.endswith("_total")] == [("cc-nongan", 25.0)]
