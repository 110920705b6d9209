"""Browsers on emulated hosts: a home whose NSS database trusts the test's CA, and the driver
(tests/deploy/browser_in_host.py) run inside a host, read back line by line."""
from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.deploy.hosts import Host

DRIVER = Path(__file__).with_name("browser_in_host.py")
REPO = Path(__file__).resolve().parents[2]


def trusting_home(home: Path, ca_pem: Path | None) -> Path:
    """A fresh HOME for one browser: its NSS database ($HOME/.pki/nssdb, where Chromium on Linux looks)
    trusting `ca_pem` to identify servers (None: an empty database, trusting nothing extra)."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True, capture_output=True)
    if ca_pem is not None:
        subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-n", "confctl-test-ca", "-t", "C,,", "-i", str(ca_pem)],
                       check=True, capture_output=True)
    return home


class BrowserRun:
    """browser_in_host.py running in a host: `report()` is its JSON line; `release()` lets it close."""

    def __init__(self, host: Host, url: str, home: Path, log: Path, *args: str):
        self.host, self.url, self.log = host, url, log
        self._log = open(log, "w")
        self.proc = host.spawn([sys.executable, str(DRIVER), url, *args], env={"HOME": str(home)},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=REPO)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_json(self, timeout: float) -> dict:
        """The driver's next JSON line, waiting at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the browser on {self.host.name} reported nothing within {timeout:.0f} s "
                                     f"({self.url}); its log: {self.tail()}") from None
            if line is None:
                raise AssertionError(f"the browser on {self.host.name} exited ({self.proc.wait()}) without a report; "
                                     f"its log: {self.tail()}")
            if line.startswith("{"):
                return json.loads(line)

    def report(self, timeout: float) -> dict:
        doc = self.next_json(timeout)
        doc["host"] = self.host.name
        return doc

    def release(self, timeout: float = 15) -> dict | None:
        """Let a --hold driver close (it prints its final figures first); None if it had already gone."""
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("done\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            return None
        try:
            final = self.next_json(timeout).get("final")
        except AssertionError:
            final = None
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return final

    def tail(self, n: int = 15) -> str:
        self._log.flush()
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])
