"""The endpoint's own bookkeeping: a finished transaction takes its timers with it, and no one else's.

In-process (no socket: the endpoint sends nowhere without a transport), so the
transaction table and timers can be read directly after each step.
"""
from __future__ import annotations

from sip_stub.builders import make_response
from sip_stub.endpoint import SipEndpoint
from sip_stub.message import Request
from sip_stub.transactions import State, Transaction


class AnswersOk:
    endpoint: SipEndpoint

    def stateless_answer(self, req: Request) -> None:
        return None  # every request gets a transaction here

    def on_request(self, req: Request, tx: Transaction, source: tuple[str, int]) -> None:
        self.endpoint.respond(tx, make_response(req, 200, "OK"))

    def on_ack(self, req, source) -> None: ...
    def on_response(self, resp, tx) -> None: ...
    def on_timeout(self, tx) -> None: ...
    def on_2xx_retransmission(self, resp) -> None: ...


def options(n: int) -> bytes:
    return (f"OPTIONS sip:conference@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKt{n}\r\n"
            f"From: <sip:p@127.0.0.1>;tag={n}\r\nTo: <sip:conference@127.0.0.1>\r\nCall-ID: t-{n}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def live_timers(ep: SipEndpoint) -> int:
    return sum(len(t) for t in ep._timers.values())


async def test_a_finished_transaction_forgets_only_its_own_timers():
    core = AnswersOk()
    ep = core.endpoint = SipEndpoint(core)
    for n in range(200):
        ep.datagram_received(options(n), ("127.0.0.1", 5099))
    # every answered non-INVITE transaction waits in Completed for its Timer J (absorbs retransmissions)
    assert len(ep.server_tx) == 200 and live_timers(ep) == 200
    txs = list(ep.server_tx.values())
    assert all(tx.state is State.COMPLETED for tx in txs)

    first = txs[0]
    ep._fire(first, "J")  # Timer J expires: terminated and forgotten
    assert first.key not in ep.server_tx and id(first) not in ep._timers
    assert len(ep.server_tx) == 199 and live_timers(ep) == 199
    assert all(not ep._timers[id(tx)]["J"].cancelled() for tx in txs[1:])

    for tx in txs[1:]:
        ep._fire(tx, "J")
    assert ep.server_tx == {} and ep._timers == {} and ep._dest == {}


async def test_close_cancels_every_pending_timer():
    core = AnswersOk()
    ep = core.endpoint = SipEndpoint(core)
    for n in range(5):
        ep.datagram_received(options(n), ("127.0.0.1", 5099))
    handles = [h for t in ep._timers.values() for h in t.values()]
    ep.close()
    assert len(handles) == 5 and all(h.cancelled() for h in handles) and ep._timers == {}

