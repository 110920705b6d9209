"""The system as deployed, across emulated hosts: `pytest -s tests/deploy/test_cross_host.py` (root).

Three hosts on one bridge (tests/deploy/hosts.py): `cp` runs the control plane and three
`confctl media-node` processes (node-jl, node-cc, node-yb), each with its own certificate-verified
TLS, advertised address and ICE port range; `b1` and `b2` each run a Chromium that trusts the
throw-away CA (scripts/dev-ca.sh) and nothing else. A cascade session at Nong'an (on node-cc)
and Antu (on node-yb, trunked through node-jl) is booked over HTTPS; each browser opens its
site's join link and joins with its (fake) camera as a technician would. Both pages must be
secure contexts, decode the other site's video, see only the advertised address among the node's
ICE candidates, and every UDP socket of the node processes must lie in its node's range.

`behind_nginx`: the same with nginx terminating TLS in front of the control plane (which then
serves plain HTTP on the cp host's loopback, its join links made https by --public-url); the
nodes keep their own TLS and reach the control plane through nginx. Each phase's time is printed.
"""
from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.browser import CHROMIUM
from tests.deploy.browsers import BrowserRun, trusting_home
from tests.deploy.hosts import Host, Hosts, skip_unless_possible

pytestmark = [pytest.mark.deploy, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
CONFCTL = str(Path(sys.executable).parent / "confctl")
DEV_CA = REPO / "scripts" / "dev-ca.sh"
TOPOLOGY = REPO / "rooms" / "data" / "jilin.yaml"
NGINX_SITE = REPO / "deploy" / "nginx" / "confctl.conf"
NGINX_WRAPPER = REPO / "deploy" / "nginx" / "nginx-test-wrapper.conf"

CP_PORT, CP_ICE = 8443, (40000, 40099)
NODES = {"node-jl": (9443, (41000, 41049)), "node-cc": (9444, (41050, 41099)), "node-yb": (9445, (41100, 41149))}
MGMT_CIDR = "198.51.100.2/24"  # TEST-NET-2, on a dummy interface of the cp host
HOST_SITE, OTHER_SITE = "cc-nongan", "yb-antu"
NAMES = {"cc-nongan": "Nong'an County", "yb-antu": "Antu County"}
ON_NODE = {"cc-nongan": "node-cc", "yb-antu": "node-yb"}
FRAMES = 60  # of the other site's video, at each browser (2 s at 30 fps)
BROWSER_TIMEOUT = 60
UNTRUSTING_ID, UNTRUSTING = "node-sp", (9446, (41150, 41199))  # a node process without the test CA
SYSTEM_CA_FILE = ssl.get_default_verify_paths().openssl_cafile


class Phases:
    """Wall-clock time of each phase, printed at the end (pytest -s shows it)."""

    def __init__(self, label: str):
        self.label, self.t0, self.last, self.times = label, time.monotonic(), time.monotonic(), {}

    def done(self, phase: str) -> None:
        now = time.monotonic()
        self.times[phase] = now - self.last
        self.last = now

    def print(self) -> None:
        total = time.monotonic() - self.t0
        print(f"\n[{self.label}] " + ", ".join(f"{k} {v:.1f} s" for k, v in self.times.items()) + f"; total {total:.1f} s")


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll a condition with a deadline (never a sleep standing in for a state); its truthy value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return value


def cli(*args: str, db: str) -> str:
    r = subprocess.run([CONFCTL, *args, "--db", db], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"confctl {' '.join(args)}: {r.stderr.strip()}"
    return r.stdout.strip().splitlines()[-1]


class Api:
    """HTTPS to the control plane from this (root-namespace) process, verified against the test CA."""

    def __init__(self, base: str, ca: Path):
        self.base, self.ctx = base, ssl.create_default_context(cafile=str(ca))

    def call(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


class Logs:
    """Each process's output in a file; the tails of all of them, for a failure's message."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()
        self.files: dict[str, Path] = {}

    def open(self, name: str):  # type: ignore[no-untyped-def]
        self.files[name] = self.folder / f"{name}.log"
        return open(self.files[name], "w")

    def tails(self, n: int = 12) -> str:
        out = []
        for name, path in self.files.items():
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            out.append(f"--- {name} ({path}), last {min(n, len(lines))} of {len(lines)} lines\n" + "\n".join(lines[-n:]))
        return "\n".join(out)


def render_nginx(tmp: Path, cp: Host, tls: Path, public_url: str, upstream: str) -> Path:
    """deploy/nginx/confctl.conf rendered for the cp host (its tokens are documented at its top), inside
    deploy/nginx/nginx-test-wrapper.conf rendered to keep every path in `tmp`: the main file to run."""
    site = NGINX_SITE.read_text()
    for token, value in (("@SERVER_NAME@", cp.addr), ("@LISTEN@", f"{cp.addr}:443"), ("@HTTP_LISTEN@", f"{cp.addr}:80"),
                         ("@PUBLIC_URL@", public_url), ("@CERT@", str(tls / "server.pem")),
                         ("@KEY@", str(tls / "server.key")), ("@UPSTREAM@", upstream),
                         ("@ACCESS_LOG@", str(tmp / "confctl.access.log"))):
        site = site.replace(token, value)
    (tmp / "confctl.conf").write_text(site)
    main = NGINX_WRAPPER.read_text().replace("@TMP@", str(tmp)).replace("@INCLUDE@", str(tmp / "confctl.conf"))
    (tmp / "nginx.conf").write_text(main)
    for name, text in (("confctl.conf", site), ("nginx.conf", main)):
        left = re.findall(r"@[A-Z_]+@", "\n".join(line.split("#")[0] for line in text.splitlines()))
        assert not left, f"tokens left unrendered in {name}: {left} (new tokens in deploy/nginx?)"
    return tmp / "nginx.conf"


def in_range(port: int, lo_hi: tuple[int, int]) -> bool:
    return lo_hi[0] <= port <= lo_hi[1]


@pytest.mark.parametrize("front", ["direct_tls", "behind_nginx"])
def test_two_browsers_on_other_hosts_meet_over_tls_through_node_processes(tmp_path, front):
    skip_unless_possible("openssl", "certutil", CHROMIUM, *(["nginx"] if front == "behind_nginx" else []))
    phases = Phases(front)
    logs = Logs(tmp_path / "logs")
    browsers: list[BrowserRun] = []
    with Hosts(["cp", "b1", "b2"]) as hosts:
        cp = hosts["cp"]
        # A second interface, as on a server with a management LAN: without --advertise the nodes would
        # offer its address as an ICE candidate too (the browsers cannot reach it).
        cp.add_interface("mgmt0", MGMT_CIDR)
        phases.done("hosts")
        try:
            _run(tmp_path, front, hosts, cp, phases, logs, browsers)
        except BaseException:
            print(f"\n[{front}] failed; the processes' logs:\n{logs.tails()}")
            for b in browsers:
                print(f"--- browser on {b.host.name}:\n{b.tail()}")
            raise
        finally:
            for b in browsers:
                if b.proc.poll() is None:
                    b.proc.kill()
            phases.print()
    assert hosts.leftovers() == []


def _run(tmp_path: Path, front: str, hosts: Hosts, cp: Host, phases: Phases, logs: Logs,
         browsers: list[BrowserRun]) -> None:
    tls = tmp_path / "tls"
    subprocess.run([str(DEV_CA), str(tls), cp.addr], check=True, capture_output=True)
    ca = tls / "ca.pem"
    env = {"SSL_CERT_FILE": str(ca)}
    db = f"sqlite:///{tmp_path}/cp.db"
    cli("topology", "load", str(TOPOLOGY), db=db)
    tokens = {name: cli("users", "add", name, "--role", role, db=db)
              for name, role in (("olga", "organizer"), ("opal", "operator"))}
    # One credential per node, bound to its id, as docs/deploy.md issues them.
    tokens.update({nid: cli("nodes", "add", nid, db=db) for nid in (*NODES, UNTRUSTING_ID)})
    phases.done("CA and database")

    work = tmp_path / "cp"
    work.mkdir()
    tls_args = ["--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server.key")]
    serve = [CONFCTL, "serve", "--db", db, "--sip-port", "0", "--advertise", cp.addr,
             "--ice-ports", f"{CP_ICE[0]}-{CP_ICE[1]}"]
    procs: dict[str, subprocess.Popen] = {}
    if front == "direct_tls":
        base = f"https://{cp.addr}:{CP_PORT}"
        serve += ["--host", cp.addr, "--port", str(CP_PORT), *tls_args]
    else:
        base = f"https://{cp.addr}"
        serve += ["--host", "127.0.0.1", "--port", "8080", "--public-url", base]
        nginx_dir = tmp_path / "nginx"
        nginx_dir.mkdir()
        conf = render_nginx(nginx_dir, cp, tls, base, "127.0.0.1:8080")
        # pid and error_log on the command line (as the wrapper says); workers as root: the temp
        # folders are under pytest's tmp_path, which only root may enter.
        globals_ = f"pid {nginx_dir}/nginx.pid; error_log stderr; user root;"
        check = cp.run(["nginx", "-t", "-q", "-p", str(nginx_dir), "-c", str(conf), "-g", globals_], check=False)
        assert check.returncode == 0, f"nginx -t on the rendered deploy/nginx/confctl.conf: {check.stderr}"
        procs["nginx"] = cp.spawn(["nginx", "-p", str(nginx_dir), "-c", str(conf), "-g", f"daemon off; {globals_}"],
                                  stdout=logs.open("nginx"), stderr=subprocess.STDOUT)
    control = procs["serve"] = cp.spawn(serve, env=env, cwd=work, stdout=logs.open("serve"), stderr=subprocess.STDOUT)
    for nid, (port, (lo, hi)) in NODES.items():
        procs[nid] = cp.spawn([CONFCTL, "media-node", "--control", base, "--id", nid, "--host", cp.addr,
                               "--port", str(port), "--public-url", f"https://{cp.addr}:{port}", *tls_args,
                               "--advertise", cp.addr, "--ice-ports", f"{lo}-{hi}",
                               "--recordings", str(tmp_path / "recordings")],
                              env={**env, "CONFCTL_NODE_TOKEN": tokens[nid]}, cwd=work,
                              stdout=logs.open(nid), stderr=subprocess.STDOUT)
    if front == "direct_tls":
        # A node trusting only the system store (not the test CA) must refuse the control plane's certificate.
        lo, hi = UNTRUSTING[1]
        procs["untrusting"] = cp.spawn([
            CONFCTL, "media-node", "--control", base, "--id", UNTRUSTING_ID, "--host", cp.addr, "--port", str(UNTRUSTING[0]),
            "--public-url", f"https://{cp.addr}:{UNTRUSTING[0]}", *tls_args, "--advertise", cp.addr,
            "--ice-ports", f"{lo}-{hi}", "--recordings", str(tmp_path / "recordings")],
            env={"SSL_CERT_FILE": SYSTEM_CA_FILE, "CONFCTL_NODE_TOKEN": tokens[UNTRUSTING_ID]}, cwd=work,
            stdout=logs.open("untrusting-node"), stderr=subprocess.STDOUT)
    api = Api(base, ca)

    last = ["nothing yet"]  # what the control plane last answered, for the timeout's message

    def nodes_alive() -> bool:
        for name, p in procs.items():  # (the untrusting node may give up and exit: that is its right)
            assert name == "untrusting" or p.poll() is None, f"{name} exited with {p.returncode}:\n{logs.tails()}"
        try:
            status, body = api.call("GET", "/api/media-nodes", tokens["opal"])
        except (OSError, ssl.SSLError) as exc:
            last[0] = f"{type(exc).__name__}: {exc}"
            return False  # not listening yet
        if status != 200:
            last[0] = f"{status}: {body}"
            return False
        alive = {n["id"] for n in body["nodes"] if n["alive"] and not n["in_process"]}
        last[0] = f"alive node processes {sorted(alive)}"
        assert UNTRUSTING_ID not in alive, f"{UNTRUSTING_ID} registered without trusting the test CA"
        return set(NODES) <= alive
    try:
        until(nodes_alive, timeout=40, what=f"the node processes {sorted(NODES)} registered and alive over HTTPS")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {last[0]}") from None
    if front == "direct_tls":
        def refused_certificate() -> bool:
            return "could not be verified" in logs.files["untrusting-node"].read_text(errors="replace")
        until(refused_certificate, timeout=15, what=f"{UNTRUSTING_ID} (system store only) saying the control "
              "plane's certificate could not be verified")
    phases.done("control plane and nodes up")
    if front == "behind_nginx":  # plain HTTP on the cp host only redirects to the public URL
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a: Any, **kw: Any) -> None:
                return None
        try:
            urllib.request.build_opener(NoRedirect).open(f"http://{cp.addr}/join?token=x", timeout=10)
            raise AssertionError("nginx answered plain HTTP without redirecting")
        except urllib.error.HTTPError as exc:
            assert exc.code == 301 and exc.headers["Location"] == f"{base}/join?token=x", (exc.code, exc.headers)

    start = datetime.now(timezone(timedelta(hours=8)))
    status, session = api.call("POST", "/api/sessions", tokens["olga"], {
        "title": "Across hosts", "host_site": HOST_SITE, "sites": [OTHER_SITE], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd", "plan": "cascade"})
    assert status == 201, session
    links = session["join_urls"]
    assert set(links) == {HOST_SITE, OTHER_SITE}, links
    for site, link in links.items():
        assert link.startswith(f"{base}/join?token="), f"{site}'s join link {link} is not on {base}"
    phases.done("booked over HTTPS")

    for host, site in ((hosts["b1"], HOST_SITE), (hosts["b2"], OTHER_SITE)):
        home = trusting_home(tmp_path / f"home-{host.name}", ca)
        browsers.append(BrowserRun(host, links[site], home, tmp_path / "logs" / f"browser-{host.name}.log",
                                   "--frames", str(FRAMES), "--timeout", str(BROWSER_TIMEOUT), "--hold"))
    reports = {site: b.report(timeout=BROWSER_TIMEOUT + 30) for site, b in zip((HOST_SITE, OTHER_SITE), browsers)}
    phases.done("both browsers decoding")
    for site, r in reports.items():
        print(f"[{front}] {site} on {r['host']}: secure={r.get('secure_context')} frames={r.get('frames_decoded')} "
              f"program={r.get('program')!r} remote candidates={r.get('remote_candidates')} "
              f"selected={r.get('selected')} timings={r.get('timings')} errors={r['errors']}")

    # While both legs are up: where each node process's UDP sockets are.
    sockets = {nid: cp.udp_sockets([procs[nid].pid]) for nid in NODES}
    serve_sockets = cp.udp_sockets([control.pid])
    for nid, socks in sockets.items():
        print(f"[{front}] {nid} UDP: {', '.join(map(str, socks)) or 'none'}")
    print(f"[{front}] serve UDP: {', '.join(map(str, serve_sockets)) or 'none'}")
    status, live = api.call("GET", "/api/live", tokens["opal"])
    assert status == 200, live
    legs = {leg["site"]: x["node"] for x in live["sessions"] if x["session"] == session["id"] for leg in x["legs"]}
    print(f"[{front}] legs on nodes: {legs}")

    problems = []
    for site, r in reports.items():
        other = OTHER_SITE if site == HOST_SITE else HOST_SITE
        if r["errors"]:
            problems.append(f"{site}: errors in the page or the driver: {r['errors']}")
        if r.get("secure_context") is not True:
            problems.append(f"{site}: the join page is not a secure context ({r.get('secure_context')})")
        if (r.get("frames_decoded") or 0) < FRAMES:
            problems.append(f"{site}: decoded {r.get('frames_decoded')} frames of {NAMES[other]}'s video "
                            f"(wanted {FRAMES}); page status {r.get('page_status')!r}")
        elif NAMES[other] not in (r.get("program") or ""):
            problems.append(f"{site}: the program shows {r.get('program')!r}, not {NAMES[other]}")
        remote = r.get("remote_candidates") or []
        if not remote and not r["errors"]:
            problems.append(f"{site}: the browser saw no remote candidates")
        wrong = [c for c in remote if c.get("address") != cp.addr]
        if wrong:
            problems.append(f"{site}: remote candidates other than the advertised {cp.addr}: {wrong}")
        selected = (r.get("selected") or {}).get("remote") or {}
        node_range = NODES[ON_NODE[site]][1]
        if not selected and not r["errors"]:
            problems.append(f"{site}: no selected candidate pair in the page's stats")
        elif selected and not (selected.get("address") == cp.addr and in_range(selected.get("port") or 0, node_range)):
            problems.append(f"{site}: the selected remote candidate {selected} is not {ON_NODE[site]} at "
                            f"{cp.addr}:{node_range[0]}-{node_range[1]}")
    for nid, socks in sockets.items():
        lo_hi = NODES[nid][1]
        outside = [str(s) for s in socks if not in_range(s.port, lo_hi)]
        if outside:
            problems.append(f"{nid}: UDP sockets outside --ice-ports {lo_hi[0]}-{lo_hi[1]}: {outside}")
    outside = [str(s) for s in serve_sockets if not in_range(s.port, CP_ICE)]
    if outside:
        problems.append(f"confctl serve: UDP sockets outside --ice-ports {CP_ICE[0]}-{CP_ICE[1]} (SIP off): {outside}")
    for site, nid in ON_NODE.items():
        if not sockets[nid]:
            problems.append(f"{nid} carries {site}'s leg but has no UDP socket (was the leg on it? legs: {legs})")
        if legs.get(site) != nid:
            problems.append(f"{site}'s leg is on {legs.get(site)}, not on {nid} as the cascade plan says")
    assert not problems, "\n".join(problems)

    finals = [b.release() for b in browsers]  # both were holding their legs until now
    phases.done("checks")
    for site, final in zip(reports, finals):
        print(f"[{front}] {site} when released: {final}")
    # The legs held while the checks ran: video still arriving at both browsers.
    assert all(f and f.get("still_flowing") for f in finals), dict(zip(reports, finals))
