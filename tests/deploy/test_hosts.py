"""The cross-host test's own machinery, on its own: emulated hosts, the throw-away CA, a browser on one
host trusting it for an HTTPS page on another, and reading a host's UDP sockets."""
from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import CHROMIUM
from tests.deploy.browsers import BrowserRun, trusting_home
from tests.deploy.hosts import Hosts, parse_ss, skip_unless_possible

REPO = Path(__file__).resolve().parents[2]
DEV_CA = REPO / "scripts" / "dev-ca.sh"

pytestmark = pytest.mark.deploy


def test_ss_lines_give_each_socket_and_its_owners():
    text = """UNCONN 0      0          10.79.0.2:41003      0.0.0.0:*    users:(("confctl",pid=812,fd=21))
UNCONN 0      0            0.0.0.0:5353       0.0.0.0:*    users:(("chromium",pid=90,fd=7),("chromium",pid=91,fd=7))
ESTAB  0      0          10.79.0.2:41010    10.79.0.3:50000 users:(("confctl",pid=813,fd=30))
UNCONN 0      0               [::]:40001         [::]:*    users:(("confctl",pid=700,fd=9))
UNCONN 0      0                  *:9               *:*
"""
    got = [(s.addr, s.port, s.pid, s.process) for s in parse_ss(text)]
    assert got == [("10.79.0.2", 41003, 812, "confctl"), ("0.0.0.0", 5353, 90, "chromium"),
                   ("0.0.0.0", 5353, 91, "chromium"), ("10.79.0.2", 41010, 813, "confctl"), ("::", 40001, 700, "confctl")]


def _wait_tls(addr: str, port: int, ca: Path, timeout: float) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((addr, port), timeout=2) as raw, ctx.wrap_socket(raw, server_hostname=addr):
                return
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling the port with the deadline above


HTTPS_SERVER = """import http.server, ssl, sys
addr, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
srv = http.server.HTTPServer((addr, port), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


@pytest.mark.browser
def test_a_browser_on_another_host_trusts_the_test_ca_and_gets_a_secure_context(tmp_path):
    skip_unless_possible("openssl", "certutil", CHROMIUM)
    with Hosts(["cp", "b1"]) as hosts:
        cp, b1 = hosts["cp"], hosts["b1"]
        tls = tmp_path / "tls"
        subprocess.run([str(DEV_CA), str(tls), cp.addr], check=True, capture_output=True)
        site = tmp_path / "site"
        site.mkdir()
        (site / "index.html").write_text("<!doctype html><title>cp</title><p>hello from cp</p>")
        cp.spawn([sys.executable, "-c", HTTPS_SERVER, cp.addr, "8443", str(tls / "server.pem"), str(tls / "server.key")],
                 cwd=site, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_tls(cp.addr, 8443, tls / "ca.pem", timeout=10)  # from this (root) namespace, through the bridge
        url = f"https://{cp.addr}:8443/"
        trusted = BrowserRun(b1, url, trusting_home(tmp_path / "home1", tls / "ca.pem"), tmp_path / "b1.log", "--probe")
        untrusted = BrowserRun(b1, url, trusting_home(tmp_path / "home2", None), tmp_path / "b1-untrusted.log", "--probe")
        ok, refused = trusted.report(timeout=60), untrusted.report(timeout=60)
        assert ok["errors"] == [] and ok["status"] == 200, ok
        assert ok["secure_context"] is True and ok["media_devices"] is True, ok
        # The same browser without the CA in its NSS database refuses the certificate: the trust is the database's.
        assert any("ERR_CERT_AUTHORITY_INVALID" in e for e in refused["errors"]), refused
        prefix = hosts.prefix
    assert not [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if ns.startswith(prefix)]
    assert not [d.name for d in Path("/sys/class/net").iterdir() if d.name.startswith(prefix)]
