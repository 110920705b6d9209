"""`make run`: the demo network on SQLite, one demo user per role, `confctl serve`, and every media node.

Tokens are stored only as hashes, so the demo users are recreated on every
run and their fresh tokens printed.

Each media node of the topology (the province's and one per prefecture) runs as its own
`confctl media-node` process on its own port: a node's CPU is its own, as on the real
network, a cascade session spanning two prefectures crosses real trunks between processes,
and killing one shows the failover (its sites rejoin through the province's node).

The URLs and tokens are printed once the control plane answers /api/health. Ctrl-C, or SIGINT,
SIGTERM or SIGHUP to this script or to `make run`'s own PID, stops them all (make passes only
SIGTERM on to its recipe: a SIGINT sent to make alone is seen here as make giving up its handler).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from confctl.cli.main import redacted
from harness.wan import stop_processes
from confctl.config import chosen_db
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


@dataclass
class Demo:
    """What the demo database holds for this run: fresh credentials, printed once the service answers."""
    sites: int
    join: str
    user_lines: list[str]
    sip_password: str
    node_tokens: dict[str, str]


def main() -> None:
    p = argparse.ArgumentParser()
    db, why = chosen_db(None)
    p.add_argument("--db", default=db, help=f"default %(default)s ({why}), the database every confctl command "
                   "uses without --db, from any directory")
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
    base = f"{'https' if tls else 'http'}://{args.host}:{args.port}"
    demo = prepare_database(args.db, base)
    make_stopped = parent_watch()  # read before the first child: a SIGINT to make alone reaches no child
    children = Children()

    def stopped() -> bool:
        return children.signalled or make_stopped()
    confctl = os.path.join(os.path.dirname(sys.executable), "confctl")
    env = dict(os.environ)
    tls_args: list[str] = []
    if tls is not None:  # the control plane and the nodes verify each other against the demo CA
        env["SSL_CERT_FILE"] = str(tls / "ca.pem")
        tls_args = ["--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server.key")]
    try:
        print(f"confctl demo: starting the control plane on {base} (database {redacted(args.db)}) ...", flush=True)
        serve = children.start([confctl, "serve", "--db", args.db, "--host", args.host, "--port", str(args.port),
                                "--sip-port", str(args.sip_port), *tls_args], env)
        if not _wait_healthy(f"{base}/api/health", serve, tls, stopped):
            return
        nodes = [] if args.no_nodes else sorted(demo.node_tokens)
        for i, node in enumerate(nodes):
            if stopped():
                return
            # The token in its environment: on a command line every local user's `ps` would read it.
            children.start([confctl, "media-node", "--control", base, "--id", node, "--host", args.host,
                            "--port", str(args.node_ports + i), *tls_args],
                           {**env, "CONFCTL_NODE_TOKEN": demo.node_tokens[node]}, quiet=True)
        # Only now that /api/health answers: URLs printed earlier met "connection refused" for ~5 s.
        print_urls(args, base, demo, nodes, tls)
        while serve.poll() is None and not stopped():
            time.sleep(0.5)
    finally:
        children.stop()


def prepare_database(db: str, base: str) -> Demo:
    """The demo network if the database has none, demo users and phone with fresh secrets, node credentials,
    and a drill starting in two minutes."""
    if db.startswith("sqlite:///") and db == chosen_db(None)[0]:
        Path(db[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)  # the user's data directory
    engine = make_engine(db)
    upgrade(engine)
    store = BookingStore(engine)
    if not store.has_topology():
        store.set_topology(demo_topology())
    sites = set(store.topology().sites)
    users = UserStore(engine)
    lines = []
    for name, role, site in DEMO_USERS:
        users.remove_named(name)
        _, token = users.add(name, role, site, sites, ("emergency",) if name == "demo-duty" else ())
        lines.append(f"    {role.value:<11} {name:<16} {('site ' + site) if site else '':<16} {token}")
    join = demo_session(store, base, users.by_name("demo-organizer").id)  # type: ignore[union-attr]
    sip = SipStore(engine)
    sip.remove_account("demo-phone")  # recreated with a fresh password on every run, like the demo users
    password = secrets.token_urlsafe(12)
    sip.add_account("demo-phone", "cc-nongan", password, "confctl")
    node_tokens = {}  # one credential per node, bound to its id (`confctl nodes add`), recreated like the users
    for node in sorted(store.topology().nodes):
        users.remove_named(node)
        node_tokens[node] = users.add(node, Role.NODE, None, sites)[1]
    engine.dispose()
    return Demo(len(sites), join, lines, password, node_tokens)


class Children:
    """The demo's processes, each in its own process group: a Ctrl-C reaches only make and this script, which
    stops them in order. A signal only sets a flag main() polls (an exception raised from the handler could
    land inside Popen and lose a child)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.signalled = False
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signalled)

    def _signalled(self, *_: object) -> None:
        self.signalled = True

    def start(self, argv: list[str], env: dict[str, str], quiet: bool = False) -> subprocess.Popen[bytes]:
        self.procs.append(subprocess.Popen(argv, env=env, process_group=0,
                                           stdout=subprocess.DEVNULL if quiet else None))
        return self.procs[-1]

    def stop(self) -> None:
        """The control plane first, then the nodes: stopped the other way round, it recorded every node as
        down (alarms the next run started with)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a second Ctrl-C does not cut this short
            signal.signal(sig, signal.SIG_IGN)
        for group in (self.procs[:1], self.procs[1:]):  # the control plane first, then the nodes
            stop_processes(group, wait_s=15)


def print_urls(args: argparse.Namespace, base: str, demo: Demo, nodes: list[str], tls: Path | None) -> None:
    print(f"\nconfctl demo: Jilin network ({demo.sites} sites), database {redacted(args.db)}\n")
    print(f"  sign in        {base}/signin     (paste a token below; the browser keeps a cookie session)")
    print(f"  organizers     {base}/sessions   (the calendar; book at {base}/book)")
    print(f"  technicians    {demo.join}")
    print("                 (Nong'an County's join link for “Demo drill”, which starts two minutes after this start)")
    print(f"  operators      {base}/operator   (live sessions, links, alarms)")
    print(f"  duty officer   {base}/duty       (emergencies: a preset starts one now; sign in as demo-duty)")
    print(f"  API reference  {base}/api        (from {base}/api/openapi.json)\n")
    print("  demo users (sign in with a token, or send Authorization: Bearer TOKEN):")
    print("\n".join(demo.user_lines))
    print(f"\n  SIP: udp {args.host}:{args.sip_port}, phone account demo-phone (site cc-nongan), "
          f"password {demo.sip_password}")
    if nodes:
        print(f"\n  media nodes (one process each; GET {base}/api/media-nodes lists them with their load):")
        for i, node in enumerate(nodes):
            print(f"    {node:<10} {base.split('://')[0]}://{args.host}:{args.node_ports + i}")
    if tls is not None:
        print_trust(tls)
    cacert = f"--cacert {(tls / 'ca.pem').resolve()} " if tls is not None else ""
    print(f"\n  try: curl {cacert}-H 'Authorization: Bearer <organizer token>' {base}/api/capacity?plan=cascade")
    cli_db = "" if args.db == chosen_db(None)[0] else f"CONFCTL_DB={redacted(args.db)} "
    print(f"  the CLI, from any directory: {cli_db}confctl sessions list; {cli_db}confctl book --as demo-organizer ...")
    print("  Ctrl-C stops everything\n", flush=True)


PARENT_STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)  # make catches these and waits for us


def caught_signals(proc_status: str) -> set[int]:
    """The signals a process handles, from its /proc/PID/status (SigCgt: a hex mask, bit n-1 for signal n)."""
    for line in proc_status.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask >> (n - 1) & 1}
    return set()


def parent_watch() -> Callable[[], bool]:
    """A check that says when `make run` was told to stop without us hearing it. On SIGINT to its own PID
    GNU make resets the handler to the default and waits for its recipe, passing nothing on (it forwards only
    SIGTERM); the reset shows in /proc. A parent that is gone (we were re-parented) counts too."""
    ppid = os.getppid()
    try:
        is_make = Path(f"/proc/{ppid}/comm").read_text().strip() in ("make", "gmake")
        watched = caught_signals(Path(f"/proc/{ppid}/status").read_text()) & set(PARENT_STOP_SIGNALS) \
            if is_make else set()
    except OSError:  # no /proc: only the parent's death is noticed
        watched = set()

    def stopped() -> bool:
        if os.getppid() != ppid:
            return True
        if not watched:
            return False
        try:
            return not watched <= caught_signals(Path(f"/proc/{ppid}/status").read_text())
        except OSError:
            return True
    return stopped


def demo_session(store: BookingStore, base: str, organizer_id: str) -> str:
    """A session starting two minutes from now (Jilin's government with Nong'an County), booked by the demo
    organizer: its join link for Nong'an."""
    from datetime import datetime, timedelta, timezone

    from confctl.join_tokens import mint
    from rooms.booking_form import BookingBody, to_request
    from rooms.store.secrets import shared_secret
    tz = timezone(timedelta(hours=8))
    start = (datetime.now(tz) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    body = BookingBody(title="Demo drill", host_site="jl", sites=["cc-nongan"], start=start.isoformat(),
                       end=(start + timedelta(hours=1)).isoformat(), profile="sd", plan="cascade")
    req, meta = to_request(body, datetime.now(timezone.utc))
    out = store.book(req, meta, organizer_id)
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


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], tls: Path | None, stopped: Callable[[], bool]) -> bool:
    """Until the control plane answers (True): the URLs are printed then, and the nodes register at once."""
    import ssl
    context = ssl.create_default_context(cafile=str(tls / "ca.pem")) if tls is not None else None
    deadline = time.monotonic() + 60
    while proc.poll() is None and not stopped():
        try:
            with urllib.request.urlopen(url, timeout=2, context=context):
                return True
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"confctl serve has not answered {url} in 60 s; stopping")
            time.sleep(0.2)
    if proc.poll() is not None:
        sys.exit(f"confctl serve exited with {proc.returncode}")
    return False


if __name__ == "__main__":
    main()
