"""A SIP worker process: reads the service's UDP socket beside its siblings.

It answers what needs no call state — OPTIONS and REGISTER (digest, bindings
in the shared database), and the challenge to an INVITE without credentials —
and relays every other datagram (INVITE, ACK, BYE, CANCEL, responses to
dial-outs) to the main process, which owns the calls and the media. Several processes reading one socket is how kamailio's
`children` scale; a REGISTER retransmission that lands in a sibling is
answered again from the database, which is harmless.

The kernel hands each datagram to whichever process reads first, so one
guesser's attempts land in every process. Each keeps a replica of the
password-guessing throttle (sip_stub/throttle.py) and all replicas apply the
same outcomes: a worker sends what it recorded up the relay, the main process
applies it and writes it down every other worker's stdin (kamailio shares its
htable the same way between nodes, with DMQ). Only failures travel, and a
success that wiped a failure record; a registration storm sends none.

Started by `sip_stub.workers.SipWorkers` with the socket and the relay as
inherited descriptors; it stops on SIGTERM or when its stdin (a pipe held
by the main process) closes, so a killed parent leaves no worker behind.

    python -m sip_stub.worker_process --sip-fd N --relay-fd M --db URL [--digest MD5]
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import logging
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from rooms.store.engine import make_engine
from rooms.store.secrets import shared_secret
from rooms.store.sip import SipStore
from sip_stub.endpoint import SipEndpoint
from sip_stub.service import SipService
from sip_stub.throttle import GuessEvent, GuessOutcome

log = logging.getLogger("sip.worker")
ANSWERED_HERE = (b"REGISTER ", b"OPTIONS ")


STATS_EVERY_S = 2.0
STATS_PREFIX = b"#stats "  # a relay frame that carries a worker's counters, not a datagram
GUESS_PREFIX = b"#guess "  # a relay frame, or a line on a worker's stdin, that carries a throttle outcome
MAX_GUESS_FRAME = 4096
DB_URL_ENV = "CONFCTL_WORKER_DB_URL"


def stats_frame(pid: int, stats: dict[str, int]) -> bytes:
    return STATS_PREFIX + json.dumps({"pid": pid, **stats}).encode()


def guess_frame(pid: int, event: GuessEvent) -> bytes:
    """An outcome `pid` recorded, for the other processes' throttles: one line (JSON escapes any newline)."""
    return GUESS_PREFIX + json.dumps({"pid": pid, "outcome": event.outcome.value, "source": event.source,
                                      "account": event.account, "at": event.at}).encode() + b"\n"


def parse_guess_frame(frame: bytes) -> tuple[int, GuessEvent]:
    if not frame.startswith(GUESS_PREFIX) or len(frame) > MAX_GUESS_FRAME:
        raise ValueError("not a guess frame")
    try:
        d = json.loads(frame[len(GUESS_PREFIX):])
        return int(d["pid"]), GuessEvent(GuessOutcome(d["outcome"]), str(d["source"]), str(d["account"]),
                                          float(d["at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed guess frame: {exc!r}") from None


def relay_frame(data: bytes, addr: tuple[str, int]) -> bytes:
    """What a worker sends the main process: the source address on one line, then the datagram."""
    return f"{addr[0]} {addr[1]}\n".encode() + data


def parse_relay_frame(frame: bytes) -> tuple[bytes, tuple[str, int]]:
    head, _, data = frame.partition(b"\n")
    host, _, port = head.decode("ascii", "replace").rpartition(" ")
    if not host or not port.isdigit():
        raise ValueError(f"malformed relay header {head[:60]!r}")
    return data, (host, int(port))


class WorkerEndpoint(SipEndpoint):
    """The registrar's endpoint. It also challenges INVITEs without credentials (statelessly, as the main
    process would, with the same key); every other datagram goes to the main process."""

    def __init__(self, core: Any, relay: socket.socket):
        super().__init__(core)
        self.relay = relay
        self.stats["relayed"] = 0
        self.stats["relay_dropped"] = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        head = data.lstrip(b"\r\n")
        if head.startswith(ANSWERED_HERE):
            return super().datagram_received(data, addr)
        if head.startswith(b"INVITE "):
            try:
                if self.answer_without_transaction(data, (addr[0], addr[1])):
                    return  # a challenge or a refusal: an INVITE flood never reaches the process running the media
            except Exception:  # a bug here must not lose the call: the main process decides
                log.exception("failed reading an INVITE from %s", addr)
        try:
            self.relay.send(relay_frame(data, (addr[0], addr[1])))
            self.stats["relayed"] += 1
        except OSError:  # the main process busy (EAGAIN) or gone: dropped, as UDP may be
            self.stats["relay_dropped"] += 1


class ParentPipe(asyncio.Protocol):
    """This worker's stdin, held by the main process: the siblings' throttle outcomes, one a line.
    Its end means the main process is gone."""

    def __init__(self, stop: asyncio.Event):
        self.stop = stop
        self.apply: Callable[[GuessEvent], None] | None = None  # set once the service exists
        self._partial = b""

    def data_received(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > MAX_GUESS_FRAME:
            self._partial = b""  # no line is that long: whatever this is, it is not ours
        for line in lines:
            try:
                _, event = parse_guess_frame(line)
            except ValueError as exc:
                log.warning("dropped a line from the main process: %s", exc)
                continue
            if self.apply is not None:
                self.apply(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop.set()


async def serve(sip_fd: int, relay_fd: int, db_url: str, digest: tuple[str, ...]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    _, parent = await loop.connect_read_pipe(lambda: ParentPipe(stop), sys.stdin)

    # Bindings are soft state: a phone re-registers within its expiry anyway, and kamailio keeps them in
    # memory only. Without an fsync per commit the write lock the workers share is held far shorter.
    engine = make_engine(db_url, durable=False)
    executor = ThreadPoolExecutor(2, thread_name_prefix="sip-worker-db")

    def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))

    key = await blocking(shared_secret, engine, "sip_nonce")
    service = SipService(SipStore(engine), blocking, key, digest_order=digest)
    relay = socket.socket(fileno=relay_fd)
    relay.setblocking(False)
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: WorkerEndpoint(service, relay), sock=socket.socket(fileno=sip_fd))
    service.endpoint = endpoint
    for counter in ("guesses_sent", "guesses_heard", "guesses_dropped"):
        endpoint.stats[counter] = 0

    def send_guess(event: GuessEvent) -> None:  # what this worker recorded, for the other processes
        try:
            relay.send(guess_frame(os.getpid(), event))
            endpoint.stats["guesses_sent"] += 1
        except OSError:  # the main process busy or gone: this replica alone knows it
            endpoint.stats["guesses_dropped"] += 1

    def hear_guess(event: GuessEvent) -> None:  # what a sibling or the main process recorded
        service.throttle.apply(event)
        endpoint.stats["guesses_heard"] += 1
    service.guess_sinks.append(send_guess)
    parent.apply = hear_guess  # type: ignore[attr-defined]

    async def report() -> None:  # the operators' view of this worker, through the main process
        while True:
            try:
                relay.send(stats_frame(os.getpid(), {**endpoint.stats, "batches": service.registrations.batches}))
            except OSError:
                pass  # the main process is busy or gone: the next report, or the stdin EOF, follows
            await asyncio.sleep(STATS_EVERY_S)
    reporter = asyncio.create_task(report())
    print("ready", flush=True)  # the main process stops reading the socket only once every worker does
    os.dup2(2, 1)  # nobody reads the pipe after this line: anything printed later goes to stderr, never blocks
    try:
        await stop.wait()
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        endpoint.close()
        await service.close()
        relay.close()
        executor.shutdown(wait=True)
        engine.dispose()


def _first_line(fd: int, limit: int = 4096) -> str:
    """The database URL the main process writes first on our stdin, read byte by byte: a buffered read
    could swallow the throttle outcomes behind it, which the loop reads from the same pipe later."""
    out = bytearray()
    while len(out) < limit:
        b = os.read(fd, 1)
        if not b or b == b"\n":
            break
        out += b
    return out.decode(errors="replace").strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sip_stub.worker_process")
    ap.add_argument("--sip-fd", type=int, required=True)
    ap.add_argument("--relay-fd", type=int, required=True)
    ap.add_argument("--digest", default="MD5")
    args = ap.parse_args(argv)
    db_url = _first_line(0) or os.environ.pop(DB_URL_ENV, None)
    if not db_url:
        ap.error("the database URL comes as the first line on stdin")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    # uvloop: datagrams in and out and callbacks in C; measured +24 % REGISTER/s per worker. Only here:
    # the main process runs aiortc, which is tested on asyncio's own loop.
    run = asyncio.run
    try:
        import uvloop
        run = uvloop.run
    except ImportError:  # (not on Windows)
        pass
    run(serve(args.sip_fd, args.relay_fd, db_url, tuple(a.strip().upper() for a in args.digest.split(","))))


if __name__ == "__main__":
    main()
