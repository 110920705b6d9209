"""`make run` (scripts/run_demo.py): the control plane and every media node as its own process, on the user's
default database, printed only once it answers, quiet, and stopped together by a signal to make's own PID."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from rooms.topology import demo_topology
from tests.media.node_processes import free_port
from tests.sip.test_sipp import free_udp_port

ROOT = Path(__file__).resolve().parent.parent
CONFCTL = str(Path(sys.executable).parent / "confctl")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def live_descendants(pid: int) -> set[int]:
    """Every live (not zombie) process under `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone while we read
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    def running(p: int) -> bool:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return {p for p in pids if running(p)}


def until(check: Callable[[], bool], seconds: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(0.2)


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user whose data directory is under tmp_path: `make run` and the CLI default to a database there."""
    env = {k: v for k, v in os.environ.items() if k not in ("CONFCTL_DB", "MAKEFLAGS", "MFLAGS")}
    return {**env, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}


def make_run(tmp_path: Path, env: dict[str, str], *run_args: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`make run` as a user types it (`-o` only skips refreshing .venv, which a test must not do)."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    proc = subprocess.Popen(["make", "--no-print-directory", "-C", str(ROOT), "-o", ".venv/.installed", "run",
                             f"RUN_ARGS={' '.join(run_args)}"], stdout=out.open("w"), stderr=err.open("w"),
                            cwd=tmp_path, env=env)
    return proc, out, err


def test_make_run_prints_once_serving_runs_every_node_quietly_and_sigint_to_make_stops_it_all(tmp_path):
    nodes = sorted(demo_topology().nodes)
    port = free_port()
    first_node = next(p for p in range(20000, 30000, 50) if not any(port_open(q) for q in range(p, p + len(nodes)))
                      and not p <= port < p + len(nodes))
    node_ports = range(first_node, first_node + len(nodes))
    env = user_env(tmp_path)
    make, out, err = make_run(tmp_path, env, "--port", str(port), "--sip-port", str(free_udp_port()),
                              "--node-ports", str(first_node))
    started: set[int] = set()
    try:
        until(lambda: "sign in" in out.read_text() or make.poll() is not None, 120, "make run printed no URLs")
        assert make.poll() is None, out.read_text() + err.read_text()
        # printed only once the control plane answers (it printed them ~5 s before it did)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as r:
            assert r.status == 200
        token = re.search(r"operator\s+demo-operator\s+(cct_\S+)", out.read_text())
        assert token, out.read_text()
        live: list[str] = []

        def all_nodes_alive() -> bool:
            nonlocal live
            assert make.poll() is None, err.read_text()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/media-nodes",
                                         headers={"Authorization": f"Bearer {token.group(1)}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                live = sorted(n["id"] for n in json.load(r)["nodes"] if n["alive"] and not n["in_process"])
            return live == nodes
        # a deadline, not a wait: eleven processes importing aiortc on a loaded 2-core machine take a while
        until(all_nodes_alive, 150, lambda: f"registered {live} of {nodes}; log:\n{err.read_text()[-3000:]}")
        # No token on any command line: `ps` shows every process's arguments to every local user.
        args = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "media-node" in args and not re.search(r"cc[tf]_[A-Za-z0-9_-]{20,}", args), args
        printed = out.read_text()
        assert all(f"http://127.0.0.1:{p}" in printed for p in node_ports)  # every node's URL is shown
        # make run serves the user's default database, the one the CLI uses from any directory
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        listed = subprocess.run([CONFCTL, "sessions", "list"], cwd=elsewhere, env=env, capture_output=True,
                                text=True, timeout=60)
        assert "Demo drill" in listed.stdout, listed.stdout + listed.stderr
        assert (tmp_path / "data" / "confctl" / "confctl.db").is_file() and not (tmp_path / "var").exists()
        # each node has beaten (it is alive); /api/live reads every node's /figures now, as the monitoring does
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/live",
                                     headers={"Authorization": f"Bearer {token.group(1)}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        started = live_descendants(make.pid)
        assert len(started) >= 2 + len(nodes), started  # run_demo, serve (and its SIP workers), every node
    finally:
        make.send_signal(signal.SIGINT)  # to make's own PID only, as `kill -INT <make's pid>`
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for p in alive(live_descendants(make.pid)):
                os.kill(p, signal.SIGKILL)
            make.kill()
            raise
    until(lambda: not alive(started), 30, f"processes of make run outlived SIGINT to make: {alive(started)}")
    assert not any(port_open(p) for p in [port, *node_ports]), "a process of the demo outlived SIGINT to make"
    log = err.read_text()
    assert '"GET /figures' not in log and '"POST /api/media-nodes' not in log, "node lines logged at INFO"
    assert "GET /api/health" not in log


def test_sigterm_to_make_stops_the_demo(tmp_path):
    port = free_port()
    make, out, err = make_run(tmp_path, user_env(tmp_path), "--port", str(port), "--sip-port", str(free_udp_port()),
                              "--no-nodes")
    started: set[int] = set()
    try:
        until(lambda: "sign in" in out.read_text() or make.poll() is not None, 120, "make run printed no URLs")
        assert make.poll() is None, out.read_text() + err.read_text()
        started = live_descendants(make.pid)
        assert started
    finally:
        make.terminate()
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for p in alive(live_descendants(make.pid)):
                os.kill(p, signal.SIGKILL)
            make.kill()
            raise
    until(lambda: not alive(started), 30, f"processes of make run outlived SIGTERM to make: {alive(started)}")
    assert not port_open(port)
