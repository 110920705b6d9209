"""`make run` (scripts/run_demo.py): the control plane and every media node as its own process, stopped together."""
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

from rooms.topology import demo_topology
from tests.media.node_processes import free_port
from tests.sip.test_sipp import free_udp_port

ROOT = Path(__file__).resolve().parent.parent


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_make_run_starts_every_media_node_as_a_process_and_ctrl_c_stops_them_all(tmp_path):
    nodes = sorted(demo_topology().nodes)
    port = free_port()
    first_node = next(p for p in range(20000, 30000, 50) if not any(port_open(q) for q in range(p, p + len(nodes)))
                      and not p <= port < p + len(nodes))
    node_ports = range(first_node, first_node + len(nodes))
    out = tmp_path / "out.txt"
    demo = subprocess.Popen([sys.executable, str(ROOT / "scripts/run_demo.py"), "--db", f"sqlite:///{tmp_path}/demo.db",
                             "--port", str(port), "--sip-port", str(free_udp_port()), "--node-ports", str(first_node)],
                            stdout=out.open("w"), stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        alive: list[str] = []
        while time.monotonic() < deadline:  # polling the demo's own API, with the deadline above
            assert demo.poll() is None, out.read_text()
            token = re.search(r"operator\s+demo-operator\s+(cct_\S+)", out.read_text())
            if token:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/media-nodes",
                                             headers={"Authorization": f"Bearer {token.group(1)}"})
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        alive = sorted(n["id"] for n in json.load(r)["nodes"] if n["alive"] and not n["in_process"])
                except OSError:
                    pass
                if alive == nodes:
                    break
            time.sleep(0.2)
        assert alive == nodes, out.read_text()
        # No token on any command line: `ps` shows every process's arguments to every local user.
        args = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert "media-node" in args and not re.search(r"cc[tf]_[A-Za-z0-9_-]{20,}", args), args
        printed = out.read_text()
        assert all(f"http://127.0.0.1:{p}" in printed for p in node_ports)  # every node's URL is shown
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        demo.wait(timeout=30)
    assert not any(port_open(p) for p in [port, *node_ports]), "a process of the demo outlived Ctrl-C"
