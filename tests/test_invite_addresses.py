"""Where invites go: the relay of `--smtp URL`, the SIP URI of the dial-in, and the sites' topology contacts."""
from __future__ import annotations

import pytest

from confctl.invite_mail import SmtpUrlError, parse_smtp_url, sip_domain
from rooms.topology import TopologyError, parse_topology


def test_an_smtp_url_names_the_relay_its_security_and_the_sender_and_keeps_the_password_off_the_command_line():
    c = parse_smtp_url("smtp://mail.jl.example", {}, "confctl@jl.example")
    assert (c.host, c.port, c.security, c.sender, c.username, c.password) == (
        "mail.jl.example", 25, "plain", "confctl@jl.example", None, None)
    c = parse_smtp_url("smtp+starttls://relay@mail.jl.example?from=booking@jl.example", {"CONFCTL_SMTP_PASSWORD": "s3"})
    assert (c.port, c.security, c.username, c.password, c.sender) == (587, "starttls", "relay", "s3", "booking@jl.example")
    c = parse_smtp_url("smtps://[::1]:2465", {"CONFCTL_SMTP_USER": "u", "CONFCTL_SMTP_PASSWORD": "p"}, "a@jl.example")
    assert (c.host, c.port, c.security, c.username, c.password) == ("::1", 2465, "tls", "u", "p")
    assert c.shown() == "smtps://u@[::1]:2465"  # for logs: never the password


@pytest.mark.parametrize("url, env, says", [
    ("http://mail.jl.example", {}, "scheme"),
    ("smtp://u:secret@mail.jl.example", {}, "CONFCTL_SMTP_PASSWORD"),
    ("smtp://mail.jl.example:99999", {}, "port"),
    ("smtp://", {}, "host"),
    ("smtp://mail.jl.example/x", {}, "path"),
    ("smtp://mail.jl.example?form=a@jl.example", {}, "unknown option"),
    ("smtp://mail.jl.example?from=nobody", {}, "from"),
    ("smtp://mail.jl.example", {"CONFCTL_SMTP_PASSWORD": "p"}, "no user"),
])
def test_a_bad_smtp_url_is_refused_in_words(url, env, says):
    with pytest.raises(SmtpUrlError, match=says):
        parse_smtp_url(url, env, "confctl@jl.example")


def test_the_dial_in_sip_uri_names_where_phones_reach_the_gateway():
    assert sip_domain(5060, "127.0.0.1", None, None) == "127.0.0.1"
    assert sip_domain(5070, "0.0.0.0", "10.1.2.3", None) == "10.1.2.3:5070"
    assert sip_domain(5060, "0.0.0.0", None, "https://confctl.jl.example") == "confctl.jl.example"
    assert sip_domain(5060, "::", "fd00::5", None) == "[fd00::5]"
    assert sip_domain(None, "127.0.0.1", None, None) is None  # SIP off: no URI to offer
    assert sip_domain(5060, "0.0.0.0", None, None) is None  # nothing says which address


def _doc(contact: object) -> dict:
    return {"sites": [{"id": "p", "contact": "desk@p.example"},
                      {"id": "c", "parent": "p", "uplink_mbps": 10, "contact": contact}],
            "default_rooms": {"": [{"id": "main"}]}}


def test_a_sites_contact_is_an_address_in_normal_form_and_a_bad_one_is_named():
    topo = parse_topology(_doc("Desk@C.Example"))
    assert topo.sites["c"].contact == "Desk@c.example" and topo.sites["p"].contact == "desk@p.example"
    assert parse_topology(_doc(None)).sites["c"].contact is None  # optional
    for bad in ("desk-at-c", "desk@c.invalid", 42):
        with pytest.raises(TopologyError) as e:
            parse_topology(_doc(bad))
        assert any(p.startswith("site c: contact") for p in e.value.problems), e.value.problems
