"""The emulated WAN: namespaces joined by shaped veths, reachable, at the link's rate, and gone afterwards."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.wan import Wan, WanError, namespaces, remove_leftovers, require_root
from harness.wan_plan import HARNESS_ADDR, SelectionError, plan_wan
from rooms.topology import demo_topology

T = demo_topology()
ROOT = Path(__file__).resolve().parents[2]


def prefix() -> str:
    return f"ccw{secrets.token_hex(2)}"


def mine(p: str) -> list[str]:
    return [n for n in namespaces() if n.startswith(p + "-")]


def test_bad_selections_and_scales_are_refused_with_a_reason():
    with pytest.raises(SelectionError, match="unknown sites: nowhere"):
        plan_wan(T, ["cc", "nowhere"], 0.1, prefix())
    for bad in (0, -0.5, 1.5):
        with pytest.raises(SelectionError, match="rate scale"):
            plan_wan(T, ["cc"], bad, prefix())
    with pytest.raises(SelectionError, match="at least one site"):
        plan_wan(T, [], 0.1, prefix())


def test_a_prefecture_brings_its_counties_and_the_path_to_the_root():
    p = plan_wan(T, ["yb"], 0.1, prefix())
    assert set(p.namespaces) == {"jl", "yb", *T.children["yb"]}
    up = p.uplink("yb")
    assert up is not None and up.parent == "jl" and up.rate_kbps == round(T.links["yb"].rate_kbps * 0.1)
    county = T.children["yb"][1]
    assert p.routes(county) == [f"default via {p.uplink(county).parent_addr} dev {p.uplink(county).child_dev}"]


def test_without_root_one_clear_line(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(WanError, match="needs root"):
        require_root()


def test_a_link_carries_its_rate_and_drops_the_rest_and_nothing_is_left_behind():
    p = plan_wan(T, ["cc-nongan"], 0.05, prefix())  # cc-nongan: 10 Mbit/s x 0.05 = 500 kbit/s
    link = p.uplink("cc-nongan")
    assert link is not None and link.rate_kbps == 500
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("0.0.0.0", 0))
    port = rx.getsockname()[1]
    rx.settimeout(0.5)
    with Wan(p) as wan:
        assert len(mine(p.prefix)) == len(p.namespaces)
        # 1 Mbit/s of 1000-byte datagrams for 3 s, up from the county to the harness: twice the link
        blast = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nt=time.monotonic()\n"
                 "i=0\nwhile time.monotonic()-t<3:\n  s.sendto(b'x'*1000,('%s',%d))\n  i+=1\n"
                 "  time.sleep(max(0,t+i*0.008-time.monotonic()))\n" % (HARNESS_ADDR, port))
        sender = wan.spawn("cc-nongan", [sys.executable, "-c", blast])
        got, first, last = 0, None, None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                n = len(rx.recv(2000))
            except socket.timeout:
                if sender.poll() is not None:
                    break
                continue
            now = time.monotonic()
            first = first or now
            last = now
            got += n
        assert first is not None and last is not None
        kbps = 8 * got / (last - first) / 1000
        print(f"offered 1000 kbit/s into a 500 kbit/s link: {kbps:.0f} kbit/s arrived")
        assert 0.85 * 500 < kbps < 1.15 * 500 * 1.05  # the rate, within TBF's burst and the headers
        assert wan.link_drops()[("cc-nongan", "up")] > 0  # the excess was dropped at the link's queue
        assert wan.link_bytes()[("cc-nongan", "up")] > got
    rx.close()
    assert mine(p.prefix) == []
    assert not any(d.name.startswith(p.prefix) for d in Path("/sys/class/net").iterdir())


def test_an_interrupted_run_leaves_no_namespace_behind(tmp_path):
    p = prefix()
    code = (f"import sys, signal, time\nsys.path.insert(0, {str(ROOT)!r})\n"
            "from harness.wan import Wan\nfrom harness.wan_plan import plan_wan\nfrom rooms.topology import demo_topology\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))\n"
            f"with Wan(plan_wan(demo_topology(), ['sp'], 0.1, {p!r})):\n"
            "    print('built', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "built"
    assert mine(p)
    proc.send_signal(signal.SIGTERM)  # Ctrl-C in the CLI arrives the same way
    assert proc.wait(timeout=30) == 143
    assert mine(p) == []
    # SIGKILL cannot be caught: the next run (or `confctl capacity --cleanup`) removes what was left.
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "built"
    proc.kill()
    proc.wait()
    left = mine(p)
    assert left
    assert set(left) <= set(remove_leftovers())
    assert mine(p) == []


def test_a_freeze_is_charged_to_the_link_only_when_the_link_did_something():
    from harness.cases import step_passes

    def report(loss: float, freezes: int, delay: float = 80.0) -> list[dict]:
        return [{"site": "cc-nongan", "legs": [{"session": "s1", "loss_pct": loss, "streams": [
            {"from": "cc", "fps": 30.0, "freezes": freezes, "max_gap_ms": 300, "delay_ms_p95": delay}]}]}]
    assert step_passes(report(0, 0)) == (True, "every stream within 1 % loss, no freeze")
    passed, why = step_passes(report(0, 1))
    assert passed and "machine stalls" in why  # nothing lost, nothing dropped, delay normal
    assert not step_passes(report(0, 1), link_drops=40)[0]  # the link dropped: its freeze
    assert not step_passes(report(0.4, 1))[0]  # something was lost somewhere
    assert not step_passes(report(0, 1, delay=2000))[0]  # the machine is overloaded: no capacity there
    assert not step_passes(report(1.5, 0))[0]


def test_one_emulated_network_at_a_time():
    first = Wan(plan_wan(T, ["cc-nongan"], 0.5, prefix()))
    with first:
        with pytest.raises(WanError, match="one at a time"):
            Wan(plan_wan(T, ["sp-lishu"], 0.5, prefix())).build()
        assert remove_leftovers() == []  # its owner is alive: not a leftover
        assert mine(first.plan.prefix)
    assert mine(first.plan.prefix) == []
