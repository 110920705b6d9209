"""A SIP worker process: reads the service's UDP socket beside its siblings.

It answers what needs no call state — OPTIONS and REGISTER (digest, bindings
in the shared database) — and relays every other datagram (INVITE, ACK, BYE,
CANCEL, responses to dial-outs) to the main process, which owns the calls
and the media. Several processes reading one socket is how kamailio's
`children` scale; a REGISTER retransmission that lands in a sibling is
answered again from the database, which is harmless.

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
from typing import Any

from rooms.store.engine import make_engine
from rooms.store.secrets import shared_secret
from rooms.store.sip import SipStore
from sip_stub.endpoint import SipEndpoint
from sip_stub.service import SipService

log = logging.getLogger("sip.worker")
ANSWERED_HERE = (b"REGISTER ", b"OPTIONS ")


STATS_EVERY_S = 2.0
STATS_PREFIX = b"#stats "  # a relay frame that carries a worker's counters, not a datagram
DB_URL_ENV = "CONFCTL_WORKER_DB_URL"


def stats_frame(pid: int, stats: dict[str, int]) -> bytes:
    return STATS_PREFIX + json.dumps({"pid": pid, **stats}).encode()


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
    """The registrar's endpoint; whatever is not a REGISTER or OPTIONS request goes to the main process."""

    def __init__(self, core: Any, relay: socket.socket):
        super().__init__(core)
        self.relay = relay
        self.stats["relayed"] = 0
        self.stats["relay_dropped"] = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data.lstrip(b"\r\n").startswith(ANSWERED_HERE):
            return super().datagram_received(data, addr)
        try:
            self.relay.send(relay_frame(data, (addr[0], addr[1])))
            self.stats["relayed"] += 1
        except OSError:  # the main process busy (EAGAIN) or gone: dropped, as UDP may be
            self.stats["relay_dropped"] += 1


async def serve(sip_fd: int, relay_fd: int, db_url: str, digest: tuple[str, ...]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    class ParentGone(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            stop.set()
    await loop.connect_read_pipe(ParentGone, sys.stdin)

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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sip_stub.worker_process")
    ap.add_argument("--sip-fd", type=int, required=True)
    ap.add_argument("--relay-fd", type=int, required=True)
    ap.add_argument("--digest", default="MD5")
    args = ap.parse_args(argv)
    db_url = os.environ.pop(DB_URL_ENV, None)  # popped: a child of this worker never inherits it
    if not db_url:
        ap.error(f"the database URL comes in the environment variable {DB_URL_ENV}")
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
