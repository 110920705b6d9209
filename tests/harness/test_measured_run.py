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
