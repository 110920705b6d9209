"""RFC 4475 §3.1.2 and §3.3 against the running service, with and without worker processes.

A message whose framing is ambiguous or whose single-value headers repeat is refused (400),
never answered 2xx, whichever process reads it; the service keeps answering afterwards.
"""
from __future__ import annotations

import pytest

from sip_stub.message import parse_message
from tests.sip.rfc4475 import CASES, datagram
from tests.sip.test_hostile import options
from tests.sip.test_sipp import sip  # noqa: F401  (fixture)
from tests.sip.test_workers import plane  # noqa: F401  (fixture)
from tests.sip.udp_client import udp_client


async def _ask(port: int, name: str) -> int | None:
    ua = await udp_client()
    try:
        ua.send(datagram(name, port, ua.port), port)
        status = None
        try:
            while status is None:  # skip a 100 Trying; a message that is dropped gets no answer
                answer = parse_message(await ua.recv(timeout=0.5))
                status = answer.status if answer.status >= 200 else None
        except TimeoutError:
            pass
        ua.send(options(port, ua.port, 7), port)  # still alive
        while True:
            reply = parse_message(await ua.recv())
            if reply.header("Call-ID") == "probe-7":
                assert reply.status == 200
                return status
    finally:
        ua.transport.close()


def _check(name: str, status: int | None) -> None:
    expected = CASES[name][1]
    assert status is None or not 200 <= status < 300, f"{name} was accepted with {status}"
    if expected is not None:
        assert status == expected, f"{name}: answered {status}, RFC 4475 guidance gives {expected}"


@pytest.mark.parametrize("name", sorted(CASES))
async def test_rfc4475_in_one_process(sip, name):  # noqa: F811
    port, _, _ = sip
    _check(name, await _ask(port, name))


async def test_rfc4475_through_the_worker_processes(plane):  # noqa: F811
    port = plane[0]
    for name in sorted(CASES):  # each case answered by whichever worker reads it
        _check(name, await _ask(port, name))
