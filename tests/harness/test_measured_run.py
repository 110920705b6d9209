"""The capacity harness end to end on a small emulated tree: Changchun, Nong'an and its sibling counties.

Every link is scaled by 0.25, so Nong'an's 10 Mbit/s county link is 2.5 Mbit/s: the model says
it carries one SD session (1,760 kbit/s down) and admits one. The run books through the API,
starts synthetic sites in their namespaces and media nodes in theirs, and ramps: one session
passes, the second (past the model) shows loss on the county link.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.cases import Case
from harness.measured_run import RunConfig, measure
from harness.report import write_report
from harness.wan import namespaces
from rooms.ids import PlanKind
from rooms.topology import demo_topology, demo_topology_path

CONFCTL = str(Path(sys.executable).parent / "confctl")


async def test_one_session_fits_and_one_more_than_the_model_shows_loss_on_the_county_link(tmp_path):
    before = set(namespaces())
    cfg = RunConfig(demo_topology(), [Case("cc-nongan", "sd", PlanKind.CASCADE)], scale=0.25, window_s=5,
                    warmup_s=20, beyond=0)
    seen: list[str] = []
    result = await measure(cfg, demo_topology_path(), lambda what, done: seen.append(what))
    (case,) = result.cases
    assert case["model"]["admitted"] == 1 and case["model"]["carried"] == 1 and case["model"]["rate_kbps"] == 2500
    one, two = case["steps"][:2]
    print({k: one[k] for k in ("sessions", "passed", "why", "link_kbps", "link_drops", "worst_loss_pct")})
    print({k: two[k] for k in ("sessions", "passed", "why", "link_kbps", "link_drops", "worst_loss_pct")})
    assert one["passed"], one["why"]
    assert 0.9 * 1760 < one["link_kbps"]["down"] < 1.15 * 1760  # one SD program down the county link
    assert not two["passed"]
    assert two["link_drops"]["down"] > 0 and two["worst_loss_pct"] >= 1  # the county link is what failed
    assert two["overridden"] == 1  # the second session was booked past admission, and says so
    assert case["measured"] == 1 and not result.partial
    assert seen[0].startswith("cc-nongan sd cascade: 1 session")  # the progress display's lines
    files = write_report(result.to_dict(), tmp_path / "report", "test")
    assert "| 1 | 1 | 1 | +0 % |" in files[0].read_text()
    assert set(namespaces()) == before  # nothing left behind


def test_an_interrupted_run_tears_down_and_marks_its_report_partial(tmp_path):
    before = set(namespaces())
    proc = subprocess.Popen([CONFCTL, "capacity", "--measure", "--select", "cc-nongan", "--profiles", "sd",
                             "--plans", "cascade", "--scale", "0.25", "--scale-above", "0", "--window", "30",
                             "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.time()

    def step_one_running() -> bool:  # its sites' specs written: agents joining, nodes up, the WAN built
        return any(p.stat().st_mtime >= started for p in
                   Path(tempfile.gettempdir()).glob("confctl-capacity-*/cc-nongan-sd-cascade-1/*.spec.json"))
    deadline = time.monotonic() + 90
    while not step_one_running() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the run's own files, with the deadline above
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    assert set(namespaces()) - before  # mid-run: the emulated network is up
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert set(namespaces()) == before, "namespaces left behind"
    assert "interrupted" in err
    report = tmp_path / "out" / "report.md"
    assert report.exists() and "PARTIAL" in report.read_text()


async def test_the_vehicle_over_its_2_mbit_600_ms_link_receives_the_speaker_and_no_alarm_fires_for_the_delay():
    """The satellite command vehicle in an emergency session, over its own emulated 2 Mbit/s link with
    a 600 ms round trip (netem's delay, or the site agents' sockets' on a kernel without it): it takes
    the speaker-only layout admission picks, receives the speaker's video and the audio within 1 %
    loss, and the alarms (its thresholds raised by its declared round trip) stay quiet."""
    before = set(namespaces())
    cfg = RunConfig(demo_topology(), [Case("jl-vehicle", "sd", PlanKind.CASCADE)], window_s=8, warmup_s=25,
                    beyond=0, max_steps=1)
    result = await measure(cfg, demo_topology_path())
    (case,) = result.cases
    (step,) = case["steps"]
    assert case["model"]["per_session_kbps"] == 920 and case["model"]["rate_kbps"] == 2000  # 1 SD video + audio
    assert step["layouts"] == [{"jl-vehicle": "speaker"}]
    vehicle = next(r for r in step["reports"] if r["site"] == "jl-vehicle")
    (leg,) = vehicle["legs"]
    print({k: step[k] for k in ("passed", "why", "link_kbps", "worst_loss_pct", "delay_ms_p95", "alarms")},
          {k: leg[k] for k in ("loss_pct", "rtt_ms", "audio_packets")}, leg["streams"])
    assert step["passed"], step["why"]
    (stream,) = leg["streams"]  # the speaker's video only
    assert stream["fps"] > 10 and leg["audio_packets"] > 0 and leg["loss_pct"] < 1
    assert leg["rtt_ms"] is not None and leg["rtt_ms"] >= 550  # the link's 600 ms round trip is really there
    assert stream["delay_ms_p50"] is None or stream["delay_ms_p50"] >= 280  # one way down: half of it
    assert 0.8 * 920 < step["link_kbps"]["down"] < 1.2 * 920  # what crosses the link is what was reserved
    assert [a for a in step["alarms"] if a["site_id"] == "jl-vehicle"] == []  # the expected delay raises nothing
    assert set(namespaces()) == before
