"""The emulated WAN on this machine: build a WanPlan with `ip` and `tc`, run processes inside it, tear it down.

Needs root and iproute2. Everything it makes carries the plan's prefix, so `teardown` (and
`remove_leftovers`, for what a SIGKILLed run left) removes exactly that: the processes started
inside, then the namespaces (deleting a namespace deletes its veths; the harness-side veth
goes with its peer). `Wan` is a context manager and tears down on exceptions; the CLI also
turns SIGTERM/SIGINT into a clean exit so the `finally` runs.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Sequence

from harness.wan_plan import HARNESS_ADDR, ROOT_ADDR, WanPlan, tc_commands

log = logging.getLogger("harness.wan")
OWNERS = Path("/run/confctl-wan")  # <prefix>.pid: which process an emulated network belongs to


class WanError(RuntimeError):
    pass


def require_root() -> None:
    """One clear line when the machine cannot emulate the WAN."""
    if os.geteuid() != 0:
        raise WanError("the WAN emulation needs root (network namespaces and tc): run it as root")
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        raise WanError("the WAN emulation needs iproute2 (`ip`, `tc`): apt-get install iproute2")


def _batch(lines: Sequence[str], tool: str = "ip") -> None:
    """Run `ip`/`tc` commands in batches, one per namespace (a line "-n NS args" runs inside NS)."""
    groups: dict[str | None, list[str]] = {}
    for line in lines:
        ns, args = (line[3:].split(" ", 1) if line.startswith("-n ") else (None, line))
        groups.setdefault(ns, []).append(args)
    for ns, group in groups.items():
        argv = [tool, *(["-n", ns] if ns else []), "-batch", "-"]
        r = subprocess.run(argv, input="\n".join(group) + "\n", capture_output=True, text=True)
        if r.returncode != 0:
            raise WanError(f"{tool} {'in ' + ns if ns else ''} failed: {r.stderr.strip()[:500]}")


def namespaces() -> list[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _owner_alive(prefix: str) -> bool:
    try:
        os.kill(int((OWNERS / f"{prefix}.pid").read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def remove_leftovers(prefix_pattern: str = r"^ccw[0-9a-f]{4}-") -> list[str]:
    """Namespaces (and their processes) left by runs that could not clean up (SIGKILL); a network
    whose owner is still running (another capacity run or dry run) is left alone."""
    gone = []
    for ns in namespaces():
        if re.match(prefix_pattern, ns) and not _owner_alive(ns.split("-")[0]):
            kill_inside(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            gone.append(ns)
    for owner in OWNERS.glob("*.pid") if OWNERS.is_dir() else []:
        if not _owner_alive(owner.stem):
            owner.unlink(missing_ok=True)
    for dev in Path("/sys/class/net").iterdir():
        if re.match(prefix_pattern.replace("-", "r$"), dev.name) and not _owner_alive(dev.name[:-1]):
            subprocess.run(["ip", "link", "del", dev.name], capture_output=True)
    return gone


def stop_processes(procs: list[subprocess.Popen], wait_s: float = 5) -> None:
    """Terminate every process, wait `wait_s` each, kill the stubborn; the list is emptied."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    procs.clear()


def kill_inside(ns: str) -> None:
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


_netem: bool | None = None


def netem_available() -> bool:
    """Whether this kernel has sch_netem (some VMs' kernels do not, and cannot load modules)."""
    global _netem
    if _netem is None:
        ns = f"ccwprobe{os.getpid()}"
        subprocess.run(["ip", "netns", "add", ns], capture_output=True)
        try:
            _netem = subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                                    capture_output=True).returncode == 0
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return _netem


class Wan:
    def __init__(self, plan: WanPlan):
        self.plan = plan
        self.procs: list[subprocess.Popen] = []
        self.built = False
        self.notes: list[str] = []  # what this emulation could not do on this machine, for the report
        self.netem = False  # whether links carry their delay in the kernel (else the site agents add it)

    def __enter__(self) -> "Wan":
        self.build()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def build(self) -> None:
        require_root()
        p = self.plan
        OWNERS.mkdir(parents=True, exist_ok=True)
        # One at a time: every emulated network uses the harness address and 10.201.0.0/16 here.
        running = [f.stem for f in OWNERS.glob("*.pid") if _owner_alive(f.stem)]
        if running:
            raise WanError(f"another emulated network ({running[0]}, process "
                           f"{(OWNERS / (running[0] + '.pid')).read_text()}) is running: one at a time on this machine")
        self.built = True  # from here on, teardown has something to remove
        (OWNERS / f"{p.prefix}.pid").write_text(str(os.getpid()))
        try:
            _batch([f"netns add {ns}" for ns in p.namespaces.values()])
            root_ns = p.namespaces[p.root]
            # First what lives in this namespace (veths created here land in theirs)...
            _batch([f"link add {p.prefix}r type veth peer name {p.prefix}h netns {root_ns}",
                    f"addr add {HARNESS_ADDR}/24 dev {p.prefix}r", f"link set {p.prefix}r up",
                    *(f"link add {l.child_dev} netns {p.namespaces[l.child]} type veth peer name {l.parent_dev} "
                      f"netns {p.namespaces[l.parent]}" for l in p.links)])
            # ...then each namespace's own addresses and devices.
            lines = [f"-n {ns} link set lo up" for ns in p.namespaces.values()]
            lines += [f"-n {root_ns} addr add {ROOT_ADDR}/24 dev {p.prefix}h", f"-n {root_ns} link set {p.prefix}h up"]
            for link in p.links:
                cns, pns = p.namespaces[link.child], p.namespaces[link.parent]
                lines += [f"-n {cns} addr add {link.child_addr}/24 dev {link.child_dev}",
                          f"-n {pns} addr add {link.parent_addr}/24 dev {link.parent_dev}",
                          f"-n {cns} link set {link.child_dev} up", f"-n {pns} link set {link.parent_dev} up"]
            _batch(lines)
            _batch([f"route replace 10.201.0.0/16 via {ROOT_ADDR} dev {p.prefix}r"])
            # the root's namespace names its harness-side device by the prefix: routes use it
            routes = []
            for site, ns in p.namespaces.items():
                for r in p.routes(site):
                    r = r.replace(f"dev {p.prefix}r", f"dev {p.prefix}h")
                    routes.append(f"-n {ns} route replace {r}")
            _batch(routes)
            for ns in p.namespaces.values():  # forward between links; no IPv6 chatter in the counters
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                                "net.ipv6.conf.all.disable_ipv6=1"], check=True, capture_output=True)
            netem = self.netem = netem_available()
            delayed = [l.child for l in p.links if l.delay_ms]
            if delayed and not netem:
                self.notes.append(f"this kernel has no netem: links {', '.join(delayed)} are shaped at their rate "
                                  "in the kernel; their delay is added at the site agents' sockets (harness/socket_delay.py)")
            shaping = []
            for link in p.links:
                for end, ns in (("child", p.namespaces[link.child]), ("parent", p.namespaces[link.parent])):
                    shaping += [f"-n {ns} {c}" for c in tc_commands(link, end, netem)]
            _batch(shaping, "tc")
        except BaseException:
            self.teardown()
            raise

    def spawn(self, site: str, argv: list[str], **kw: object) -> subprocess.Popen:
        """A process inside the site's namespace, killed at teardown."""
        ns = self.plan.namespaces[site]  # type: ignore[index]
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def link_bytes(self) -> dict[tuple[str, str], int]:
        """Bytes sent into each link, per direction, from the kernel's counters (tx at each end)."""
        out = {}
        for link in self.plan.links:
            for direction, dev, site in (("up", link.child_dev, link.child), ("down", link.parent_dev, link.parent)):
                ns = self.plan.namespaces[site]
                r = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{dev}/statistics/tx_bytes"],
                                   capture_output=True, text=True)
                out[(str(link.child), direction)] = int(r.stdout.strip() or 0)
        return out

    def link_drops(self) -> dict[tuple[str, str], int]:
        """Packets each link's queue dropped, per direction (tc's own count)."""
        out = {}
        for link in self.plan.links:
            for direction, dev, site in (("up", link.child_dev, link.child), ("down", link.parent_dev, link.parent)):
                r = subprocess.run(["tc", "-n", self.plan.namespaces[site], "-s", "qdisc", "show", "dev", dev],
                                   capture_output=True, text=True)
                m = re.search(r"dropped (\d+)", r.stdout)
                out[(str(link.child), direction)] = int(m.group(1)) if m else 0
        return out

    def teardown(self) -> None:
        stop_processes(self.procs)
        if not self.built:
            return
        for ns in self.plan.namespaces.values():
            kill_inside(ns)
        _batch([f"netns del {ns}" for ns in self.plan.namespaces.values() if ns in set(namespaces())])
        subprocess.run(["ip", "link", "del", f"{self.plan.prefix}r"], capture_output=True)  # gone with its peer, mostly
        subprocess.run(["ip", "route", "del", "10.201.0.0/16"], capture_output=True)
        (OWNERS / f"{self.plan.prefix}.pid").unlink(missing_ok=True)
        self.built = False
