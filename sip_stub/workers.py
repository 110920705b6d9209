"""SIP worker processes reading the service's socket; their relayed datagrams fed to the main endpoint.

One Python process answered a fifth to a quarter of the REGISTERs kamailio
(children=2) does (scripts/bench/sip.py); registration storms after a power
cut are the load that matters, and registrations need no call state. So with workers the main
process stops reading the socket itself: the workers read it, answer
REGISTER and OPTIONS, and relay the rest here over a Unix datagram pair. The
main endpoint still sends through the same socket, so replies leave from the
service's port. Every worker is owned: stopped and awaited on close, and
gone by itself if this process dies (its stdin pipe closes).

The password-guessing throttle is replicated, not centralised: asking this
process before each digest check would put it back on every REGISTER's path.
A worker sends each outcome it records up the relay; this process applies it
to its own replica (it checks INVITEs) and writes it down every other
worker's stdin, as it does its own outcomes. A replica lags by one hop of
local IPC; a worker too slow to read its pipe loses outcomes, never blocks us.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from typing import Any, Callable

from sip_stub.endpoint import SipEndpoint
from sip_stub.service import SipService
from sip_stub.throttle import GuessEvent
from sip_stub.worker_process import (DB_URL_ENV, GUESS_PREFIX, STATS_PREFIX, guess_frame, parse_guess_frame,
                                     parse_relay_frame)

log = logging.getLogger("sip.workers")
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
MAX_UNREAD_BY_WORKER = 256 * 1024  # bytes of outcomes a worker has not read yet; beyond, more are dropped


class _RelayIn(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint, reports: dict[int, tuple[float, dict[str, int]]],
                 on_guess: Callable[[bytes], None]):
        self.endpoint = endpoint
        self.reports = reports
        self.on_guess = on_guess

    def datagram_received(self, frame: bytes, _addr: Any) -> None:
        if frame.startswith(GUESS_PREFIX):
            return self.on_guess(frame)
        if frame.startswith(STATS_PREFIX):
            try:
                stats = json.loads(frame[len(STATS_PREFIX):])
                self.reports[int(stats.pop("pid"))] = (time.monotonic(), stats)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("dropped a worker report: %s", exc)
            return
        try:
            data, source = parse_relay_frame(frame)
        except ValueError as exc:
            log.warning("dropped a relayed datagram: %s", exc)
            return
        self.endpoint.datagram_received(data, source)


class SipWorkers:
    def __init__(self, endpoint: SipEndpoint, count: int, db_url: str, digest: tuple[str, ...]):
        self.endpoint = endpoint
        self.count = count
        self.db_url = db_url
        self.digest = digest
        self.procs: list[asyncio.subprocess.Process] = []
        self._relay_transport: asyncio.DatagramTransport | None = None
        self._watch: asyncio.Task[None] | None = None
        self._reports: dict[int, tuple[float, dict[str, int]]] = {}  # pid -> (when, counters)
        core = endpoint.core
        self.service = core if isinstance(core, SipService) else None  # whose throttle the workers share

    async def start(self) -> None:
        assert self.endpoint.transport is not None, "start the endpoint first"
        sip_sock = self.endpoint.transport.get_extra_info("socket")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        for counter in ("guesses_shared", "guesses_dropped"):
            self.endpoint.stats.setdefault(counter, 0)
        if self.service is not None:
            self.service.guess_sinks.append(self._own_guess)
        try:
            self._relay_transport, _ = await loop.create_datagram_endpoint(
                lambda: _RelayIn(self.endpoint, self._reports, self._worker_guess), sock=ours)
            for _ in range(self.count):
                self.procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "sip_stub.worker_process", "--sip-fd", str(sip_sock.fileno()),
                    "--relay-fd", str(theirs.fileno()), "--digest", ",".join(self.digest),
                    # The URL may hold a password: the first line on its stdin, neither on a command line `ps`
                    # shows nor in its environment, which /proc/PID/environ keeps for the process's life.
                    env={k: v for k, v in os.environ.items() if k not in (DB_URL_ENV, "CONFCTL_DB")},
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    pass_fds=(sip_sock.fileno(), theirs.fileno())))
                self.procs[-1].stdin.write(self.db_url.encode() + b"\n")  # type: ignore[union-attr]
            for p in self.procs:  # this process keeps reading until every worker reads too: no gap at start
                try:
                    line = await asyncio.wait_for(p.stdout.readline(), READY_TIMEOUT_S)  # type: ignore[union-attr]
                except asyncio.TimeoutError:
                    line = b""
                if line != b"ready\n":
                    raise RuntimeError(f"SIP worker {p.pid} did not start (see its log above)")
        except BaseException:
            await self.close()
            raise
        finally:
            theirs.close()  # the workers hold their copies
        _set_reading(self.endpoint.transport, False)  # from now on the workers read; this process only sends
        self._watch = asyncio.create_task(self._watch_workers())
        log.info("SIP: %d worker processes read the socket (pids %s)", self.count, [p.pid for p in self.procs])

    # -- the shared throttle ---------------------------------------------------------------
    def _own_guess(self, event: GuessEvent) -> None:
        self._share(guess_frame(os.getpid(), event), origin=None)

    def _worker_guess(self, frame: bytes) -> None:
        try:
            pid, event = parse_guess_frame(frame)
        except ValueError as exc:
            log.warning("dropped a worker's throttle outcome: %s", exc)
            return
        self._share(frame, origin=pid)
        if self.service is not None:  # its replica, and the other control planes (not back to us)
            self.service.heard(event, origin=self._own_guess)

    def _share(self, frame: bytes, origin: int | None) -> None:
        """Down every worker's stdin but the one it came from."""
        for p in self.procs:
            if p.pid == origin or p.returncode is not None or p.stdin is None:
                continue
            transport = p.stdin.transport
            if transport.is_closing() or transport.get_write_buffer_size() > MAX_UNREAD_BY_WORKER:
                self.endpoint.stats["guesses_dropped"] += 1
                continue
            p.stdin.write(frame)
            self.endpoint.stats["guesses_shared"] += 1

    def status(self) -> dict[str, Any]:
        """What operators see: this process's counters and every worker's latest report."""
        now = time.monotonic()
        workers = []
        for p in self.procs:
            when, stats = self._reports.get(p.pid, (None, {}))
            workers.append({"pid": p.pid, "running": p.returncode is None, "exit_code": p.returncode,
                            "reported_s_ago": None if when is None else round(now - when, 1), "stats": stats})
        return {"reading_socket": bool(self.endpoint.transport and _is_reading(self.endpoint.transport)),
                "stats": dict(self.endpoint.stats), "workers": workers}

    async def _watch_workers(self) -> None:
        """A worker that dies is logged; if none is left, this process reads the socket again.

        Dead workers are not restarted: the survivors (or this process) keep answering, and the
        operators see the exit in /api/sip/status."""
        waits = {asyncio.ensure_future(p.wait()): p for p in self.procs}
        try:
            while waits:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    log.error("SIP worker %d exited with %s", waits.pop(fut).pid, fut.result())
            if self.endpoint.transport is not None:
                log.error("SIP: no worker left; the main process reads the socket again")
                _set_reading(self.endpoint.transport, True)
        finally:
            for fut in waits:
                fut.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def close(self) -> None:
        if self.service is not None and self._own_guess in self.service.guess_sinks:
            self.service.guess_sinks.remove(self._own_guess)
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        for p in self.procs:
            if p.returncode is None:
                p.terminate()
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.error("SIP worker %d ignored SIGTERM: killed", p.pid)
                p.kill()
                await p.wait()
            if p.stdin is not None:
                p.stdin.close()
        self.procs.clear()
        if self._relay_transport is not None:
            self._relay_transport.close()
            self._relay_transport = None


# Datagram transports pause and resume reading from CPython 3.11.4 on; Debian 12's python3 (3.11.2)
# raises NotImplementedError. There the socket's reader is removed from the loop and put back.
def _set_reading(transport: Any, reading: bool) -> None:
    try:
        transport.resume_reading() if reading else transport.pause_reading()
    except NotImplementedError:
        # The loop's own unchecked calls (the public ones refuse a descriptor a transport owns), with the
        # selector transport's own callback: what 3.11.4's pause_reading does.
        loop, fd = asyncio.get_running_loop(), transport.get_extra_info("socket").fileno()
        if reading:
            loop._add_reader(fd, transport._read_ready)  # type: ignore[attr-defined]
        else:
            loop._remove_reader(fd)  # type: ignore[attr-defined]
        transport._confctl_reading = reading


def _is_reading(transport: Any) -> bool:
    if hasattr(transport, "_confctl_reading"):  # paused or resumed by the fallback above
        return bool(transport._confctl_reading)
    try:
        return bool(transport.is_reading())
    except NotImplementedError:
        return True
