"""Where media.native cannot be imported (not built: no compiler at install, a broken build), the node
forwards through the Python specification of the same path (media/rtp_output.py, aiortc_hooks'
ForwardOnly), and says so once in its log and in /api/health; where it can, /api/health says the C
forwards."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.media.test_signalling import client  # noqa: F401 (the fixture)

ROOT = Path(__file__).parents[2]


def test_without_the_c_the_node_forwards_real_rtp_through_python_and_says_so(tmp_path):
    """A fresh interpreter in which importing media.native fails: the control plane's node with three
    aiortc sites joined through /ws over loopback (tests/media/python_path_node.py)."""
    blocked = ("import sys; sys.modules['media.native'] = None; "
               f"from tests.media.python_path_node import main; main({str(tmp_path)!r})")
    run = subprocess.run([sys.executable, "-c", blocked], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "XDG_DATA_HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-4000:]
    got = json.loads(run.stdout)
    assert got["native"] == "None"  # blocked: media.forwarding's import of it failed
    # every site received both other sites' video, forwarded packet by packet by the Python specification
    assert all(len(frames) == 2 and min(frames.values()) >= 10 for frames in got["frames"].values()), got["frames"]
    assert len(got["outputs"]) == 9 and all(kind == "media.rtp_output.RtpOutput" and packets > 0
                                            for kind, packets in got["outputs"]), got["outputs"]
    assert got["demuxes"] == 0  # the sockets read in Python, not by the C's Demux
    for health in got["health"]:
        assert health["ok"] is True and health["forwarding"]["path"] == "python"
        assert health["forwarding"]["reason"].startswith("media.native cannot be imported (")
    said = [line for line in run.stderr.splitlines() if "media.native cannot be imported" in line]
    assert len(said) == 1 and said[0].startswith("WARNING media.forwarding: "), said  # once, not per leg or read


async def test_with_the_c_health_says_it_forwards(client):  # noqa: F811
    body = await (await client.get("/api/health")).json()
    assert body["forwarding"] == {"path": "native"}
