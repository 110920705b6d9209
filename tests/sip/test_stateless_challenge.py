"""The challenge to an INVITE without credentials is sent once, without a transaction: no amplifier.

An INVITE flood from spoofed sources never ACKs. With a server transaction, each INVITE drew a
100 Trying and a 401 that Timer G retransmitted until Timer H (64*T1): 12 datagrams for one. Here
the replies are counted over that whole timeout, with T1 shortened as tests/sip/test_call_ending.py
does, one process and with workers (which challenge INVITEs themselves, as the main process would).
"""
from __future__ import annotations

import time
from collections import Counter

import pytest

from confctl.keys import SIP_ENDPOINT
from sip_stub import transactions
from sip_stub.fields import parse_name_addr
from sip_stub.message import Request, Response, parse_message
from sip_stub.service import SipService
from tests.media.peers import until
from tests.sip.test_sipp import sip  # noqa: F401  (fixture)
from tests.sip.test_workers import plane  # noqa: F401  (fixture)
from tests.sip.udp_client import UdpClient, udp_client

T1 = 0.05  # Timer H = 64*T1 = 3.2 s instead of 32 s
FLOOD = 20


def invite(port: int, ua_port: int, n: int, method: str = "INVITE", to_tag: str = "") -> bytes:
    return (f"{method} sip:100200@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bKflood{n};rport\r\n"
            f"From: <sip:spoofed@127.0.0.1>;tag=f{n}\r\nTo: <sip:100200@127.0.0.1>{to_tag}\r\n"
            f"Call-ID: flood-{n}@t\r\nCSeq: 1 {method}\r\nContact: <sip:spoofed@127.0.0.1:{ua_port}>\r\n"
            f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


async def _drain(ua: UdpClient, seconds: float) -> list[Response]:
    """Everything that arrives within `seconds` (the whole transaction timeout: a deadline, not a wait for state)."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = parse_message(await ua.recv(left))
        except TimeoutError:
            break
        assert isinstance(msg, Response)
        got.append(msg)
    return got


async def _flood_without_ack(port: int) -> tuple[Counter[str], list[Response]]:
    """FLOOD INVITEs, the first sent twice (a retransmission), the second ACKed; every reply over 64*T1."""
    ua = await udp_client()
    try:
        for n in range(FLOOD):
            ua.send(invite(port, ua.port, n), port)
        ua.send(invite(port, ua.port, 0), port)  # a retransmission: answered again, recomputed
        replies: list[Response] = []
        while not any(r.header("Call-ID") == "flood-1@t" for r in replies):
            msg = parse_message(await ua.recv())
            assert isinstance(msg, Response)
            replies.append(msg)
        # the ACK for the 401 to INVITE 1 (its branch, the 401's To tag): absorbed, answered with nothing
        tag = parse_name_addr(next(r for r in replies if r.header("Call-ID") == "flood-1@t").header("To") or "").tag
        ua.send(invite(port, ua.port, 1, "ACK", f";tag={tag}"), port)
        replies += await _drain(ua, 64 * T1 + 1.0)
    finally:
        ua.transport.close()
    return Counter(r.header("Call-ID") or "" for r in replies), replies


def _assert_at_most_two_replies(per_call: Counter[str], replies: list[Response]) -> None:
    assert {r.status for r in replies} == {401}  # no 100 Trying either: nothing to stop retransmitting
    assert per_call["flood-0@t"] == 2  # one per transmission
    assert all(per_call[f"flood-{n}@t"] == 1 for n in range(1, FLOOD)), per_call
    assert max(per_call.values()) <= 2
    tags = {parse_name_addr(r.header("To") or "").tag for r in replies if r.header("Call-ID") == "flood-0@t"}
    assert len(tags) == 1  # the retransmission got the same answer, recomputed
    print(f"\n{len(replies)} replies to {FLOOD + 1} INVITEs (one a retransmission) and an ACK, over 64*T1")


async def test_an_unacked_invite_draws_at_most_two_replies(sip, monkeypatch):  # noqa: F811
    port, _, server = sip
    monkeypatch.setattr(transactions, "T1", T1)
    endpoint = server.app[SIP_ENDPOINT]
    _assert_at_most_two_replies(*await _flood_without_ack(port))
    assert not [k for k in endpoint.server_tx if k[-1] == "INVITE"]  # none was ever created...
    assert endpoint.stats["stateless"] == FLOOD + 1  # ...each was answered statelessly


async def test_an_unacked_invite_draws_at_most_two_replies_through_workers(plane, monkeypatch):  # noqa: F811
    port, _, app, status = plane
    monkeypatch.setattr(transactions, "T1", T1)  # (the main process, should an INVITE reach it, runs in this one)
    _assert_at_most_two_replies(*await _flood_without_ack(port))

    async def challenged_by_workers() -> bool:
        return sum(w["stats"].get("stateless", 0) for w in (await status())["workers"]) == FLOOD + 1
    await until(challenged_by_workers, what="the workers reporting the challenges they sent")
    # the workers answered the flood: the process running the media saw only the ACK, and absorbed it
    assert app[SIP_ENDPOINT].stats["stateless"] == 0 and app[SIP_ENDPOINT].stats["received"] == 1
    assert not [k for k in app[SIP_ENDPOINT].server_tx if k[-1] == "INVITE"]


class _OneCall:
    """A gateway with one established call, whose first INVITE had CSeq 2 (after a challenge at CSeq 1)."""

    def __init__(self) -> None:
        first = parse_message(invite(5060, 5099, 7).replace(b"1 INVITE", b"2 INVITE"))
        self.call = type("Call", (), {"invite_tx": type("Tx", (), {"request": first})()})()
        self.acked: list[Request] = []

    def find(self, req: Request):  # noqa: ANN201
        return self.call

    def ack(self, req: Request) -> None:
        self.acked.append(req)


@pytest.mark.parametrize("cseq, reaches_the_call", [(1, False), (2, True), (3, True)])
def test_a_late_ack_for_the_challenge_is_not_taken_for_the_ack_of_the_2xx(cseq, reaches_the_call):
    gateway = _OneCall()
    service = SipService(None, None, b"k", gateway=gateway)  # type: ignore[arg-type]
    ack = parse_message(invite(5060, 5099, 7, "ACK", ";tag=t").replace(b"1 ACK", f"{cseq} ACK".encode()))
    service.on_ack(ack, ("127.0.0.1", 5099))
    assert (gateway.acked == [ack]) is reaches_the_call  # 1: the 401's ACK; 2: the 2xx's; 3: a re-INVITE's
