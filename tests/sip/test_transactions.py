"""Transaction state machines driven by synthetic events: every transition and timer asserted."""
from sip_stub.builders import make_response
from sip_stub.message import Request
from sip_stub.transactions import (T1, T2, T4, ClientTransaction, InviteClientTransaction, InviteServerTransaction,
                                   Send, ServerTransaction, StartTimer, State, StopTimer, TimedOut, ToTU)


def req(method: str) -> Request:
    return Request(method=method, uri="sip:a@h", headers=[
        ("Via", "SIP/2.0/UDP h:5060;branch=z9hG4bKx"), ("From", "<sip:b@h>;tag=1"), ("To", "<sip:a@h>"),
        ("Call-ID", "c"), ("CSeq", f"1 {method}")])


def timers(actions, name):
    return [a.delay for a in actions if isinstance(a, StartTimer) and a.name == name]


def test_invite_server_non2xx_retransmits_until_ack_then_confirms():
    invite = req("INVITE")
    tx = InviteServerTransaction(("k",), State.PROCEEDING, request=invite)
    assert tx.respond(make_response(invite, 100, "Trying")) == [Send(tx.last_response)]
    out = tx.respond(make_response(invite, 486, "Busy Here"))
    assert tx.state is State.COMPLETED and timers(out, "G") == [T1] and timers(out, "H") == [64 * T1]
    delays = []
    for _ in range(5):
        out = tx.on_timer("G")
        assert isinstance(out[0], Send) and out[0].message.status == 486
        delays += timers(out, "G")
    assert delays == [2 * T1, 4 * T1, T2, T2, T2]  # doubling, capped at T2
    assert tx.on_request(invite) == [Send(tx.last_response)]  # a retransmitted INVITE gets the final again
    out = tx.on_request(req("ACK"))
    assert tx.state is State.CONFIRMED and StopTimer("G") in out and timers(out, "I") == [T4]
    assert tx.on_request(req("ACK")) == []  # further ACKs absorbed
    tx.on_timer("I")
    assert tx.history == [("proceeding", "completed"), ("completed", "confirmed"), ("confirmed", "terminated")]


def test_invite_server_without_ack_times_out_on_h():
    invite = req("INVITE")
    tx = InviteServerTransaction(("k",), State.PROCEEDING, request=invite)
    tx.respond(make_response(invite, 404, "Not Found"))
    assert tx.on_timer("H") == [TimedOut()] and tx.done


def test_invite_server_2xx_is_accepted_and_retransmitted_until_the_dialog_sees_ack():
    invite = req("INVITE")
    tx = InviteServerTransaction(("k",), State.PROCEEDING, request=invite)
    out = tx.respond(make_response(invite, 200, "OK"))
    assert tx.state is State.ACCEPTED and timers(out, "L") == [64 * T1]
    assert tx.on_timer("G")[0].message.status == 200
    ack = req("ACK")
    assert tx.on_request(ack) == [ToTU(ack)]
    tx.on_timer("L")
    assert tx.done


def test_non_invite_server_absorbs_retransmissions_before_answering():
    options = req("OPTIONS")
    tx = ServerTransaction(("k",), State.TRYING, request=options)
    assert tx.on_request(options) == []  # no response yet: absorbed
    out = tx.respond(make_response(options, 200, "OK"))
    assert timers(out, "J") == [64 * T1]
    assert tx.on_request(options) == [Send(tx.last_response)]
    tx.on_timer("J")
    assert tx.done


def test_non_invite_client_retransmits_on_e_and_gives_up_on_f():
    tx = ClientTransaction(("k",), State.TRYING, request=req("OPTIONS"))
    out = tx.start()
    assert timers(out, "E") == [T1] and timers(out, "F") == [64 * T1]
    assert [timers(tx.on_timer("E"), "E")[0] for _ in range(4)] == [2 * T1, 4 * T1, T2, T2]
    assert TimedOut() in tx.on_timer("F") and tx.done


def test_non_invite_client_final_response_then_k():
    r = req("OPTIONS")
    tx = ClientTransaction(("k",), State.TRYING, request=r)
    tx.start()
    ok = make_response(r, 200, "OK")
    out = tx.on_response(ok)
    assert ToTU(ok) in out and timers(out, "K") == [T4]
    assert tx.on_response(ok) == []  # a retransmitted final is absorbed
    tx.on_timer("K")
    assert tx.done


def test_invite_client_acks_a_failure_itself_and_again_when_it_is_retransmitted():
    invite = req("INVITE")
    tx = InviteClientTransaction(("k",), State.CALLING, request=invite)
    tx.start()
    assert timers(tx.on_timer("A"), "A") == [2 * T1]
    busy = make_response(invite, 486, "Busy Here", to_tag="t")
    from sip_stub.builders import make_ack_for
    tx.ack = make_ack_for(invite, busy)
    out = tx.on_response(busy)
    assert Send(tx.ack) in out and ToTU(busy) in out and tx.state is State.COMPLETED
    assert tx.on_response(busy) == [Send(tx.ack)]
    assert tx.ack.cseq() == (1, "ACK") and "tag=t" in tx.ack.header("To")


def test_invite_client_times_out_on_b():
    tx = InviteClientTransaction(("k",), State.CALLING, request=req("INVITE"))
    tx.start()
    assert TimedOut() in tx.on_timer("B") and tx.done
