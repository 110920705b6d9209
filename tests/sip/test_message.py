"""The sans-io SIP message layer on RFC 4475-style torture messages."""
import pytest

from sip_stub.fields import multipart_parts, parse_auth, parse_name_addr, parse_uri, parse_via
from sip_stub.message import Request, Response, parse_message
from tests.sip.torture import ESC01, INTMETH, INVALID, MPART, UNREASON, VALID, WSINV


@pytest.mark.parametrize("name", VALID)
def test_valid_unusual_messages_parse_and_round_trip(name):
    msg = parse_message(VALID[name])
    again = parse_message(bytes(msg))
    assert again == msg  # parse -> bytes -> parse is the identity


def test_folding_compact_names_and_multi_value_headers():
    msg = parse_message(WSINV)
    assert isinstance(msg, Request) and msg.method == "INVITE"
    assert msg.cseq() == (9, "INVITE")
    assert msg.header("t") == msg.header("To") and "1918181833n" in msg.header("to")
    vias = [parse_via(v) for v in msg.values("Via")]
    assert [v.host for v in vias] == ["192.0.2.2", "spindle.example.com", "192.168.255.111"]
    assert vias[1].branch == "z9hG4bK9ikj8" and vias[2].branch == "z9hG4bK30239"
    assert parse_name_addr(msg.header("from")).display == 'J Rosenberg \\"'
    contact = parse_name_addr(msg.header("m"))
    assert contact.display == 'Quoted string ""' and contact.params["q"] == "0.33"
    assert len(msg.body) == 150 and msg.body.startswith(b"v=0")


def test_escapes_in_uris_and_unusual_tokens():
    msg = parse_message(ESC01)
    assert parse_uri(msg.uri).user == "sips:user@example.com"
    assert parse_name_addr(msg.header("From")).uri == "sip:I%20have%20spaces@example.net"
    weird = parse_message(INTMETH)
    assert weird.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert weird.cseq() == (139122385, weird.method)


def test_multipart_body_and_trailing_octets_after_content_length():
    msg = parse_message(MPART)
    assert len(msg.body) == 128  # what followed was discarded
    (part,) = multipart_parts(msg.header("Content-Type"), msg.body)
    assert part[0]["content-type"] == "text/plain" and part[1] == b"Hello"


def test_responses_with_unusual_or_empty_reasons():
    msg = parse_message(UNREASON)
    assert isinstance(msg, Response) and msg.status == 200 and msg.reason.startswith("= 2**3")
    assert parse_message(VALID["noreason"]).reason == ""


@pytest.mark.parametrize("name", INVALID)
def test_invalid_messages_raise_a_precise_value_error(name):
    with pytest.raises(ValueError) as err:
        parse_message(INVALID[name])
    assert str(err.value)


def test_digest_parameters_with_quoted_commas():
    scheme, p = parse_auth('Digest username="bob", realm="conf, jilin", nonce="abc", uri="sip:x@y", '
                           'response="0123", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="zz"')
    assert scheme == "digest" and p["realm"] == "conf, jilin" and p["algorithm"] == "SHA-256"


def test_serialization_adds_nothing():
    raw = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\n\r\n"
    assert bytes(parse_message(raw)) == raw
