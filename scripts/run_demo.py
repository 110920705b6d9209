"""`make run`: the demo network on SQLite, one demo user per role, `confctl serve`, and every media node.

Tokens are stored only as hashes, so the demo users are recreated on every
run and their fresh tokens printed.

Each media node of the topology (the province's and one per prefecture) runs as its own
`confctl media-node` process on its own port: a node's CPU is its own, as on the real
network, a cascade session spanning two prefectures crosses real trunks between processes,
and killing one shows the failover (its sites rejoin through the province's node). Ctrl-C
stops them all.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from confctl.config import DEFAULT_DB_URL
from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.store.sip import SipStore
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology

DEMO_USERS = [
    ("demo-organizer", Role.ORGANIZER, None),
    ("demo-duty", Role.ORGANIZER, None),  # the duty officer: also granted the emergency permission below
    ("demo-technician", Role.TECHNICIAN, "cc-nongan"),
    ("demo-operator", Role.OPERATOR, None),
    ("demo-admin", Role.ADMIN, None),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", default=DEFAULT_DB_URL, help="the database every confctl command uses by default")
    p.add_argument("--host", default=os.environ.get("CONFCTL_HOST", "127.0.0.1"))
    p.add_argument("--port", default=os.environ.get("CONFCTL_PORT", "8080"))
    p.add_argument("--sip-port", default=os.environ.get("CONFCTL_SIP_PORT", "5060"))
    p.add_argument("--node-ports", type=int, default=int(os.environ.get("CONFCTL_NODE_PORTS", "9100")),
                   help="the first media node's port; the others follow")
    p.add_argument("--no-nodes", action="store_true", help="every media node inside confctl serve instead")
    p.add_argument("--tls", action="store_true", help="HTTPS and WSS with a throw-away CA made under var/tls "
                   "(`make run TLS=1`); plain HTTP on localhost is already a secure context for browsers")
    args = p.parse_args()
    tls = make_demo_ca(args.host) if args.tls else None
    engine = make_engine(args.db)
    upgrade(engine)
    store = BookingStore(engine)
    if not store.has_topology():
        store.set_topology(demo_topology())
    sites = set(store.topology().sites)
    users = UserStore(engine)
    base = f"{'https' if tls else 'http'}://{args.host}:{args.port}"
    print(f"\nconfctl demo: Jilin network ({len(sites)} sites), database {args.db}\n")
    join = demo_session(store, base)
    print(f"  sign in        {base}/signin     (paste a token below; the browser keeps a cookie session)")
    print(f"  organizers     {base}/sessions   (the calendar; book at {base}/book)")
    print(f"  technicians    {join}")
    print("                 (Nong'an County's join link for “Demo drill”, which starts two minutes after this start)")
    print(f"  operators      {base}/operator   (live sessions, links, alarms)")
    print(f"  duty officer   {base}/duty       (emergencies: a preset starts one now; sign in as demo-duty)")
    print(f"  API reference  {base}/api        (from {base}/api/openapi.json)\n")
    print("  demo users (sign in with a token, or send Authorization: Bearer TOKEN):")
    for name, role, site in DEMO_USERS:
        users.remove_named(name)
        user, token = users.add(name, role, site, sites, ("emergency",) if name == "demo-duty" else ())
        print(f"    {role.value:<11} {name:<16} {('site ' + site) if site else '':<16} {token}")
    sip = SipStore(engine)
    sip.remove_account("demo-phone")  # recreated with a fresh password on every run, like the demo users
    password = secrets.token_urlsafe(12)
    sip.add_account("demo-phone", "cc-nongan", password, "confctl")
    print(f"\n  SIP: udp {args.host}:{args.sip_port}, phone account demo-phone (site cc-nongan), password {password}")
    nodes = sorted(store.topology().nodes)
    node_tokens = {}  # one credential per node, bound to its id (`confctl nodes add`), recreated like the users
    for node in nodes:
        users.remove_named(node)
        node_tokens[node] = users.add(node, Role.NODE, None, sites)[1]
    engine.dispose()
    confctl = os.path.join(os.path.dirname(sys.executable), "confctl")
    children: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for c in reversed(children):
            if c.poll() is None:
                c.terminate()
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = dict(os.environ)
    tls_args: list[str] = []
    if tls is not None:  # the control plane and the nodes verify each other against the demo CA
        env["SSL_CERT_FILE"] = str(tls / "ca.pem")
        tls_args = ["--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server.key")]
    children.append(subprocess.Popen([confctl, "serve", "--db", args.db, "--host", args.host, "--port", str(args.port),
                                      "--sip-port", str(args.sip_port), *tls_args], env=env))
    _wait_healthy(f"{base}/api/health", children[0], tls)
    if not args.no_nodes:
        print(f"\n  media nodes (one process each; GET {base}/api/media-nodes lists them with their load):")
        for i, node in enumerate(nodes):
            port = args.node_ports + i
            children.append(subprocess.Popen(
                [confctl, "media-node", "--control", base, "--id", node, "--host", args.host,
                 "--port", str(port), *tls_args], stdout=subprocess.DEVNULL,
                # The token in its environment: on a command line every local user's `ps` would read it.
                env={**env, "CONFCTL_NODE_TOKEN": node_tokens[node]}))
            print(f"    {node:<10} {base.split('://')[0]}://{args.host}:{port}")
    if tls is not None:
        print_trust(tls)
    cacert = f"--cacert {(tls / 'ca.pem').resolve()} " if tls is not None else ""
    print(f"\n  try: curl {cacert}-H 'Authorization: Bearer <organizer token>' {base}/api/capacity?plan=cascade\n",
          flush=True)
    while all(c.poll() is None for c in children[:1]):
        time.sleep(1)
    stop()


def demo_session(store: BookingStore, base: str) -> str:
    """A session starting two minutes from now (Jilin's government with Nong'an County): its join link for Nong'an."""
    from datetime import datetime, timedelta, timezone

    from confctl.join_tokens import mint
    from rooms.booking_form import BookingBody, to_request
    from rooms.store.secrets import shared_secret
    tz = timezone(timedelta(hours=8))
    start = (datetime.now(tz) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    body = BookingBody(title="Demo drill", host_site="jl", sites=["cc-nongan"], start=start.isoformat(),
                       end=(start + timedelta(hours=1)).isoformat(), profile="sd", plan="cascade")
    req, meta = to_request(body, datetime.now(timezone.utc))
    out = store.book(req, meta, "demo")
    if out.session is None:  # the rooms are taken by an earlier run's drill: use that one
        now = int(datetime.now(timezone.utc).timestamp())
        drills = [s for s in store.list(now, now + 3600, "cc-nongan") if s["title"] == "Demo drill"]
        if not drills:
            return "(no demo session: Nong'an's rooms are booked now)"
        sid = drills[0]["id"]
    else:
        sid = out.session["id"]
    return f"{base}/join?token={mint(shared_secret(store.engine, 'join_token'), sid, 'cc-nongan')}"


def make_demo_ca(host: str) -> Path:
    """A throw-away CA and a certificate for `host` under var/tls (scripts/dev-ca.sh, openssl)."""
    folder = Path("var/tls")
    script = Path(__file__).resolve().parent / "dev-ca.sh"
    names = sorted({host, "localhost", "127.0.0.1"})
    r = subprocess.run([str(script), str(folder), *names], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"could not make the demo CA: {r.stderr.strip() or r.stdout.strip()}")
    return folder


def print_trust(tls: Path) -> None:
    ca = tls.resolve() / "ca.pem"
    print(f"""
  TLS: a throw-away CA made for this demo signed the certificate; trust it to open the pages without a warning:
    curl             curl --cacert {ca} ...   (Python: SSL_CERT_FILE={ca})
    Chromium/Linux   certutil -d sql:$HOME/.pki/nssdb -A -n confctl-demo-ca -t "C,," -i {ca}   (package libnss3-tools)
    this machine     cp {ca} /usr/local/share/ca-certificates/confctl-demo-ca.crt && update-ca-certificates
  (remove it again when done: it is a demo CA whose key lies in {tls.resolve()})""", flush=True)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], tls: Path | None = None) -> None:
    """The control plane answers before the nodes register with it (they would retry anyway)."""
    import ssl
    context = ssl.create_default_context(cafile=str(tls / "ca.pem")) if tls is not None else None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):
                return
        except OSError:
            time.sleep(0.2)
    if proc.poll() is not None:
        sys.exit(f"confctl serve exited with {proc.returncode}")


if __name__ == "__main__":
    main()
