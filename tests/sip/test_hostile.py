"""Malformed and hostile datagrams in the spirit of RFC 4475: no crash, no hang, OPTIONS still answered."""
from __future__ import annotations

import pytest

from confctl.keys import SIP_ENDPOINT
from sip_stub.message import parse_message
from tests.sip.test_sipp import sip  # noqa: F401  (fixture)
from tests.sip.torture import INVALID, VALID
from tests.sip.udp_client import udp_client


def options(port: int, ua_port: int, n: int) -> bytes:
    return (f"OPTIONS sip:conference@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bKopt{n}\r\n"
            f"From: <sip:probe@127.0.0.1>;tag={n}\r\nTo: <sip:conference@127.0.0.1>\r\nCall-ID: probe-{n}\r\n"
            f"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def hostile(port: int, ua_port: int) -> dict[str, bytes]:
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{ua_port};branch=z9hG4bKh"
    base = "From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:y@127.0.0.1>\r\nCall-ID: hostile\r\nMax-Forwards: 70\r\n"
    return {
        "huge_datagram": b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"a" * 60000 + b"\r\n\r\n",
        "via_flood": ("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n" + f"{via}1\r\n" * 5000 + base + "CSeq: 1 OPTIONS\r\n\r\n").encode(),
        "absurd_content_length": (f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{via}2\r\n{base}CSeq: 1 OPTIONS\r\n"
                                  "Content-Length: 4294967296000\r\n\r\n").encode(),
        "nul_bytes": b"\x00" * 500,
        "unsolicited_response": (f"SIP/2.0 200 OK\r\n{via}3\r\n{base}CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode(),
        "missing_call_id": (f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{via}4\r\nFrom: <sip:x@h>;tag=1\r\nTo: <sip:y@h>\r\n"
                            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
        "cseq_method_mismatch": (f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{via}5\r\n{base}CSeq: 1 INVITE\r\n"
                                 "Content-Length: 0\r\n\r\n").encode(),
        "huge_cseq": (f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{via}6\r\n{base}CSeq: 99999999999999999999 OPTIONS\r\n"
                      "Content-Length: 0\r\n\r\n").encode(),
        "bad_via": (f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: HTTP/1.1 nonsense\r\n{base}CSeq: 1 OPTIONS\r\n\r\n").encode(),
        "unknown_method": (f"FROBNICATE sip:a@127.0.0.1 SIP/2.0\r\n{via}7\r\n{base}CSeq: 1 FROBNICATE\r\n"
                           "Content-Length: 0\r\n\r\n").encode(),
        "require_unknown": (f"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{via}8\r\n{base}CSeq: 1 OPTIONS\r\n"
                            "Require: nosuchextension\r\nContent-Length: 0\r\n\r\n").encode(),
        "bad_register_auth": (f"REGISTER sip:127.0.0.1 SIP/2.0\r\n{via}9\r\nFrom: <sip:desk-101@127.0.0.1>;tag=1\r\n"
                              "To: <sip:desk-101@127.0.0.1>\r\nCall-ID: r\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
                              'Authorization: Digest username="desk-101", realm="confctl", nonce="forged", uri="x", '
                              'response="0"\r\nContent-Length: 0\r\n\r\n').encode(),
        **{f"invalid_{k}": v for k, v in INVALID.items()},
        **{f"valid_{k}": v for k, v in VALID.items()},
    }


EXPECT = {  # what a datagram must be answered with; absent: dropped (no answer) or any answer
    "missing_call_id": 400, "cseq_method_mismatch": 400, "huge_cseq": 400, "unknown_method": 405,
    "require_unknown": 420, "bad_register_auth": 403,
    "bad_via": 400,  # answered to the packet's source: its Via is unusable
    "absurd_content_length": 400,  # framing in doubt: refused at once (RFC 3261 §18.3)
}
SILENT = {"unsolicited_response", "nul_bytes", "huge_datagram"}


@pytest.mark.parametrize("case", sorted(hostile(5060, 5060)))
async def test_hostile_datagrams_never_break_the_service(sip, case):  # noqa: F811
    port, _, _ = sip
    ua = await udp_client()
    try:
        ua.send(hostile(port, ua.port)[case], port)
        if case in EXPECT:
            answer = parse_message(await ua.recv())
            assert answer.status == EXPECT[case], (case, answer.status, answer.reason)
        elif case in SILENT:
            assert await ua.nothing_within(0.3), f"{case} was answered"
        # whatever happened, the service still answers OPTIONS at once
        ua.send(options(port, ua.port, 1), port)
        while True:
            reply = parse_message(await ua.recv())
            if reply.header("Call-ID") == "probe-1":
                break
        assert reply.status == 200
    finally:
        ua.transport.close()


async def test_retransmissions_get_the_same_answer_stateless_or_from_the_transaction(sip):  # noqa: F811
    port, _, server = sip
    endpoint = server.app[SIP_ENDPOINT]
    ua = await udp_client()
    try:
        # OPTIONS is answered statelessly: every copy (a lost response, retransmitted) again, identically
        for _ in range(3):
            ua.send(options(port, ua.port, 7), port)
        answers = [await ua.recv() for _ in range(3)]
        assert len(set(answers)) == 1 and answers[0].startswith(b"SIP/2.0 200")
        assert endpoint.stats["stateless"] == 3 and endpoint.server_tx == {}
        # an authenticated REGISTER gets a transaction, which answers its retransmissions itself
        register = hostile(port, ua.port)["bad_register_auth"]
        ua.send(register, port)
        first = await ua.recv()
        for _ in range(2):
            ua.send(register, port)
        assert [await ua.recv() for _ in range(2)] == [first, first] and first.startswith(b"SIP/2.0 403")
        assert len(endpoint.server_tx) == 1
    finally:
        ua.transport.close()
