"""Emulated hosts on this machine: network namespaces on one Linux bridge, each with its own address.

    with Hosts(["cp", "b1", "b2"]) as hosts:
        proc = hosts["cp"].spawn(["confctl", "serve", "--host", hosts["cp"].addr, ...])
        hosts["cp"].udp_sockets([proc.pid])

The bridge lives in the root namespace with the subnet's .1 (10.79.0.1/24 unless another run holds
10.79.0.0/24; then the next free 10.79.N.0/24), so this process reaches every host through it; host
k (in the order given) gets .k+1 on a veth into the bridge, its `lo` up and IPv6 off on its veth.
Everything carries a random prefix (`cfd` + 6 hex digits) and an owner file
(/run/confctl-deploy/<prefix>.pid): a run removes its own in `__exit__` (the processes it started,
then whatever else runs inside its namespaces, then the namespaces (their veths go with them), then
the bridge), and what a SIGKILLed run left behind is removed by the next run (`remove_leftovers`).
Needs root and iproute2 (`ip`, `ss`); `skip_unless_possible` skips a test with one line otherwise.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from harness.wan import kill_inside, namespaces, stop_processes  # the capacity harness's own

OWNERS = Path("/run/confctl-deploy")
PREFIX = re.compile(r"^(cfd[0-9a-f]{6})(?:-|br$|v\d+$)")


class HostsError(RuntimeError):
    pass


def skip_unless_possible(*tools: str) -> None:
    """pytest.skip, with one line, on a machine that cannot emulate hosts (or lacks one of `tools`)."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip("emulated hosts need root (network namespaces, a bridge): run this test as root")
    for tool in ("ip", "ss", *tools):
        if shutil.which(tool) is None and not Path(tool).is_file():
            pytest.skip(f"emulated hosts need {Path(tool).name}: scripts/install-system-deps.sh installs it")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise HostsError(f"ip {' '.join(args)}: {r.stderr.strip()[:300]}")
    return r


def _sysctl(ns: str | None, *settings: str) -> None:
    argv = ["sysctl", "-q", "-w", *settings]
    r = subprocess.run(["ip", "netns", "exec", ns, *argv] if ns else argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise HostsError(f"sysctl {' '.join(settings)}{' in ' + ns if ns else ''}: {r.stderr.strip()[:300]}")


def _owner_alive(prefix: str) -> bool:
    try:
        os.kill(int((OWNERS / f"{prefix}.pid").read_text()), 0)
        return True
    except (OSError, ValueError):
        return False


def remove_leftovers() -> list[str]:
    """Namespaces, bridges and owner files of runs that died without cleaning up (their owner is gone).
    A run still going (another pytest, in parallel) is left alone."""
    gone = []
    for ns in namespaces():
        m = PREFIX.match(ns)
        if m and not _owner_alive(m.group(1)):
            kill_inside(ns)
            _ip("netns", "del", ns, check=False)
            gone.append(ns)
    for dev in Path("/sys/class/net").iterdir():
        m = PREFIX.match(dev.name)
        if m and not _owner_alive(m.group(1)):
            _ip("link", "del", dev.name, check=False)
            gone.append(dev.name)
    if OWNERS.is_dir():
        for owner in OWNERS.glob("cfd*.pid"):
            if not _owner_alive(owner.stem):
                owner.unlink(missing_ok=True)
    return gone


def _subnets_in_use() -> set[ipaddress.IPv4Network]:
    r = _ip("-4", "-o", "route", "show", "table", "all", check=False)
    used = set()
    for line in r.stdout.splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest.startswith("local") or dest.startswith("broadcast"):
            dest = line.split()[1]
        try:
            used.add(ipaddress.ip_network(dest, strict=False))
        except ValueError:
            pass
    return used


def _free_subnet() -> str:
    """'10.79.N' for the first N whose /24 no route on this machine overlaps (10.79.0 when alone)."""
    used = [n for n in _subnets_in_use() if n.prefixlen > 0]
    for n in range(256):
        net = ipaddress.ip_network(f"10.79.{n}.0/24")
        if not any(net.overlaps(u) for u in used):
            return f"10.79.{n}"
    raise HostsError("no free /24 left in 10.79.0.0/16 for emulated hosts")


def _descendants(pids: Iterable[int]) -> set[int]:
    """The given processes and all their children's children (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, ()))
    return out


@dataclass(frozen=True)
class UdpSocket:
    addr: str
    port: int
    pid: int
    process: str

    def __str__(self) -> str:
        return f"{self.addr}:{self.port} ({self.process}, pid {self.pid})"


_USER = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')


def parse_ss(text: str) -> list[UdpSocket]:
    """`ss -uanpH` lines: one UdpSocket per (socket, owning process)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        # State Recv-Q Send-Q Local Peer [Process]; UNCONN sockets print no state with some ss versions
        local = fields[3] if fields[0].isalpha() or fields[0] == "-" else fields[2]
        addr, _, port = local.rpartition(":")
        addr = addr.strip("[]").split("%")[0]
        for name, pid in _USER.findall(line):
            out.append(UdpSocket(addr, int(port), int(pid), name))
    return out


class Host:
    def __init__(self, hosts: "Hosts", name: str, ns: str, addr: str, root_dev: str):
        self.hosts, self.name, self.ns, self.addr, self.root_dev = hosts, name, ns, addr, root_dev

    def __repr__(self) -> str:
        return f"Host({self.name}, {self.addr}, netns {self.ns})"

    def spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None, **kw: object) -> subprocess.Popen:
        """A process inside this host (`ip netns exec`, which execs: the pid is the program's), stopped
        when the hosts are torn down. `env` adds to (or overrides) this process's environment."""
        full = {**os.environ, **(env or {})}
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], env=full, **kw)  # type: ignore[call-overload]
        self.hosts.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess:
        """A short command inside this host, waited for (check=True unless told otherwise)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("check", True)
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], **kw)  # type: ignore[call-overload]

    def add_interface(self, name: str, cidr: str) -> None:
        """Another interface on this host, up, with `cidr`: a second network, such as a management LAN,
        whose address must not leak into what the host advertises. (A veth pair inside the host, as
        kernels without the dummy module have veths.)"""
        _ip("-n", self.ns, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
        _ip("-n", self.ns, "addr", "add", cidr, "dev", name)
        _ip("-n", self.ns, "link", "set", f"{name}p", "up")
        _ip("-n", self.ns, "link", "set", name, "up")

    def udp_sockets(self, pids: Iterable[int], children: bool = True) -> list[UdpSocket]:
        """The UDP sockets in this host owned by those processes (and their descendants)."""
        wanted = _descendants(pids) if children else set(pids)
        r = self.run(["ss", "-uanpH"])
        return [s for s in parse_ss(r.stdout) if s.pid in wanted]


class Hosts:
    """N emulated hosts on one bridge; a context manager that removes everything on the way out."""

    def __init__(self, names: Sequence[str]):
        if len(set(names)) != len(names) or not names or len(names) > 250:
            raise ValueError(f"host names must be unique, 1 to 250 of them: {names}")
        self.names = list(names)
        self.prefix = "cfd" + secrets.token_hex(3)
        self.bridge = f"{self.prefix}br"
        self.subnet = ""
        self.gateway = ""  # the bridge's address: how this (root-namespace) process is seen by the hosts
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen] = []
        self.built = False

    def __enter__(self) -> "Hosts":
        self.build()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def build(self) -> None:
        if os.geteuid() != 0:
            raise HostsError("emulated hosts need root")
        OWNERS.mkdir(parents=True, exist_ok=True)
        remove_leftovers()
        self.built = True  # from here on, teardown has something to remove
        (OWNERS / f"{self.prefix}.pid").write_text(str(os.getpid()))
        try:
            # Choosing the subnet and taking it (the bridge's address) under one lock: parallel runs
            # get different subnets.
            with open(OWNERS / ".lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.subnet = _free_subnet()
                self.gateway = f"{self.subnet}.1"
                # nf_call_iptables 0: bridged frames skip the root namespace's iptables (br_netfilter)
                if _ip("link", "add", self.bridge, "type", "bridge", "nf_call_iptables", "0", check=False).returncode:
                    _ip("link", "add", self.bridge, "type", "bridge")
                _sysctl(None, f"net.ipv6.conf.{self.bridge}.disable_ipv6=1")
                _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
                _ip("link", "set", self.bridge, "up")
            for k, name in enumerate(self.names, start=2):
                ns, dev = f"{self.prefix}-{name}", f"{self.prefix}v{k}"
                addr = f"{self.subnet}.{k}"
                _ip("netns", "add", ns)
                self.hosts[name] = Host(self, name, ns, addr, dev)
                _ip("link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _sysctl(None, f"net.ipv6.conf.{dev}.disable_ipv6=1")
                _ip("link", "set", dev, "master", self.bridge)
                _ip("link", "set", dev, "up")
                _sysctl(ns, "net.ipv6.conf.eth0.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
                for args in (("addr", "add", f"{addr}/24", "dev", "eth0"), ("link", "set", "eth0", "up"),
                             ("link", "set", "lo", "up")):
                    _ip("-n", ns, *args)
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        stop_processes(self.procs)
        if not self.built:
            return
        present = set(namespaces())
        for host in self.hosts.values():
            if host.ns in present:
                kill_inside(host.ns)
        for host in self.hosts.values():
            if host.ns in present:
                _ip("netns", "del", host.ns, check=False)
        # a namespace whose `ip netns add` failed half-way, not yet in self.hosts
        for ns in set(namespaces()):
            if ns.startswith(self.prefix + "-"):
                kill_inside(ns)
                _ip("netns", "del", ns, check=False)
        for dev in Path("/sys/class/net").iterdir():
            if dev.name.startswith(self.prefix):
                _ip("link", "del", dev.name, check=False)
        (OWNERS / f"{self.prefix}.pid").unlink(missing_ok=True)
        self.hosts.clear()
        self.built = False

    def leftovers(self) -> list[str]:
        """What of this run is still on the machine (empty after teardown)."""
        return ([ns for ns in namespaces() if ns.startswith(self.prefix)]
                + [d.name for d in Path("/sys/class/net").iterdir() if d.name.startswith(self.prefix)])
