"""SIP transactions per second: confctl's SIP service against Debian's kamailio, same sipp load, same run.

Both run as their own processes on loopback. sipp drives OPTIONS, then a
registration storm: --accounts distinct phones (10,000), each its own account
and contact, REGISTER with MD5 digest (401 challenge, authenticated REGISTER,
200), one call per phone at each offered rate; the rate is the successful
transactions over the elapsed time. Both servers hold the same accounts in
their database (confctl: its own; kamailio: auth_db over db_text) and keep
contacts as they do in production (confctl: the shared database; kamailio:
usrloc in memory). Prints both rates, failures and the ratio, median of
--repeat alternating runs. Target: confctl >= 1/3 of kamailio, 0 failed.

The ratio depends on the offered rate: where kamailio keeps up with what
sipp offers, its figure is the offered rate, not its capacity. So it runs
at a modest rate (what a deployment sees in a registration storm) and at
the highest rate sipp sustains here (confctl saturated).

    .venv/bin/python scripts/bench/sip.py [--accounts 10000] [--repeat 3] [--rates 3000,10000] [--workers 2]
"""
from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tqdm import tqdm  # noqa: E402

from rooms.store.engine import make_engine  # noqa: E402
from rooms.store.sip import SipStore  # noqa: E402
from rooms.topology import demo_topology_path  # noqa: E402

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE.parents[1] / "tests" / "sip" / "scenarios"
CONFCTL = str(Path(sys.executable).parent / "confctl")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_options(port: int, timeout: float = 20) -> None:
    """Until the server answers an OPTIONS (polling with a deadline)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.bind(("127.0.0.1", 0))
        me = s.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            s.sendto((f"OPTIONS sip:x@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKw{n}\r\n"
                      f"From: <sip:w@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: wait{n}\r\nCSeq: 1 OPTIONS\r\n"
                      "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
            try:
                if s.recv(65535).startswith(b"SIP/2.0 200"):
                    return
            except socket.timeout:
                continue
    raise RuntimeError(f"nothing answers OPTIONS on udp {port}")


def accounts(n: int) -> list[tuple[str, str]]:
    return [(f"phone-{i:05d}", f"pw-{i:05d}-secret") for i in range(n)]


def write_kamailio_subscribers(folder: Path, rows: list[tuple[str, str]]) -> None:
    """auth_db's subscriber table as db_text files (Kamailio 5.6 schema, version 7)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "version").write_text("table_name(string) table_version(int)\nsubscriber:7\n")
    lines = ["id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)"]
    lines += [f"{i + 1}:{u}:confctl:{p}::" for i, (u, p) in enumerate(rows)]
    (folder / "subscriber").write_text("\n".join(lines) + "\n")


def run_sipp(port: int, scenario: str, calls: int, rate: int, workdir: Path, *extra: str) -> tuple[float, int, int]:
    t0 = time.monotonic()
    path = SCENARIOS / scenario if (SCENARIOS / scenario).exists() else HERE / "sipp" / scenario
    out = subprocess.run(["sipp", f"127.0.0.1:{port}", "-sf", str(path), "-m", str(calls),
                          "-r", str(rate), "-l", "500", "-i", "127.0.0.1", "-p", "0", "-nostdin", "-timeout", "120",
                          "-timeout_error", *extra], cwd=workdir, capture_output=True, text=True).stdout
    elapsed = time.monotonic() - t0
    ok = re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", out)
    failed = re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", out)
    return elapsed, int(ok[-1]) if ok else 0, int(failed[-1]) if failed else calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20000, help="OPTIONS transactions per case")
    ap.add_argument("--accounts", type=int, default=10000, help="phones in the registration storm")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case and server; the median is printed")
    ap.add_argument("--rates", default="3000,10000", help="offered calls per second, comma-separated")
    ap.add_argument("--workers", type=int, default=2, help="confctl serve --sip-workers (kamailio runs children=2)")
    args = ap.parse_args()
    if not shutil.which("kamailio") or not shutil.which("sipp"):
        sys.exit("needs Debian's kamailio and sip-tester (sipp): apt-get install kamailio sip-tester")
    work = Path(tempfile.mkdtemp(prefix="confctl-sipbench-"))
    db = f"sqlite:///{work}/bench.db"
    subprocess.run([CONFCTL, "topology", "load", str(demo_topology_path()), "--db", db], check=True, capture_output=True)
    phones = accounts(args.accounts)
    engine = make_engine(db)
    store = SipStore(engine)
    for user, password in tqdm(phones, desc="creating SIP accounts", unit="acct", file=sys.stderr):
        store.add_account(user, "cc-nongan", password, "confctl")
    engine.dispose()
    write_kamailio_subscribers(work / "kamdb", phones)
    # sipp 3.6 expands no [field] inside [authentication ...]: the keyword itself is the field
    (work / "phones.csv").write_text("SEQUENTIAL\n" + "".join(
        f"{u};[authentication username={u} password={p}]\n" for u, p in phones))
    ours, kam_port = free_port(), free_port()
    servers = [
        subprocess.Popen([CONFCTL, "serve", "--db", db, "--port", str(free_port(socket.SOCK_STREAM)),
                          "--sip-port", str(ours), "--sip-workers", str(args.workers)],
                         cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    cfg = ((HERE / "kamailio" / "kamailio_accounts.cfg").read_text().replace("KAM_PORT", str(kam_port))
           .replace("DB_DIR", str(work / "kamdb")))
    (work / "kamailio.cfg").write_text(cfg)
    servers.append(subprocess.Popen(["kamailio", "-f", str(work / "kamailio.cfg"), "-DD", "-E", "-m", "64",
                                     "-P", str(work / "kam.pid"), "-Y", str(work)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        wait_options(ours)
        wait_options(kam_port)
        print(f"sipp: {args.calls} OPTIONS per run; a storm of {args.accounts} phones (own account, own contact) "
              f"per REGISTER run; median of {args.repeat} alternating runs; 2 cores shared by sipp and the server; "
              f"confctl with {args.workers} SIP worker processes, kamailio with children=2")
        print(f"{'case':<22} {'offered/s':>9} {'confctl tx/s':>13} {'failed':>7} {'kamailio tx/s':>14} {'failed':>7} {'ratio':>7}")
        for rate in [int(r) for r in args.rates.split(",")]:
            for name, scenario, calls, extra in (
                    ("OPTIONS", "options.xml", args.calls, ["-s", "conference"]),
                    ("REGISTER storm", "register_many.xml", args.accounts, ["-inf", str(work / "phones.csv")])):
                rates: list[list[float]] = [[], []]
                fails = [0, 0]
                for _ in range(args.repeat):  # alternating, so drift on this noisy machine hits both alike
                    for i, port in enumerate((ours, kam_port)):
                        elapsed, ok, failed = run_sipp(port, scenario, calls, rate, work, *extra)
                        rates[i].append(ok / elapsed)
                        fails[i] += failed
                mine, theirs = statistics.median(rates[0]), statistics.median(rates[1])
                print(f"{name:<22} {rate:>9} {mine:>13.0f} {fails[0]:>7} {theirs:>14.0f} {fails[1]:>7} "
                      f"{mine / theirs:>7.2f}   (confctl {'/'.join(f'{r:.0f}' for r in rates[0])}; "
                      f"kamailio {'/'.join(f'{r:.0f}' for r in rates[1])})", flush=True)
    finally:
        for p in servers:
            p.terminate()
        for p in servers:
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
