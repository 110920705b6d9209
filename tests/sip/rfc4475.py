"""RFC 4475 §3.1.2 (invalid messages) and §3.3 (application-layer semantics), as datagrams aimed at us.

Each is written after the RFC's message of that name, with the Via pointing back at the test's
UA so an answer can be read; `{ua}` and `{port}` are filled in. The expected answer follows the
RFC's guidance for a UAS (a registrar here); None: refused one way or another, never 2xx.
"""
from __future__ import annotations

HEAD = ("Via: SIP/2.0/UDP 127.0.0.1:{ua};branch=z9hG4bK{name}\r\nMax-Forwards: 70\r\n"
        "From: <sip:caller@example.net>;tag=1{name}\r\nTo: <sip:desk-101@127.0.0.1>\r\nCall-ID: {name}@t\r\n")


def _req(method: str, uri: str, extra: str = "", body: str = "", cseq: str | None = None, length: str | None = None) -> str:
    cl = f"Content-Length: {len(body.encode()) if length is None else length}\r\n" if length != "" else ""
    return (f"{method} {uri} SIP/2.0\r\n{HEAD}CSeq: {cseq or '1 ' + method}\r\n{extra}{cl}\r\n{body}")


SDP = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

CASES: dict[str, tuple[str, int | None]] = {
    # §3.1.2.2 clerr: Content-Length larger than the message
    "clerr": (_req("INVITE", "sip:1234@127.0.0.1:{port}", "Content-Type: application/sdp\r\n", SDP, length="9999"), 400),
    # §3.1.2.3 ncl: negative Content-Length
    "ncl": (_req("INVITE", "sip:1234@127.0.0.1:{port}", "Content-Type: application/sdp\r\n", SDP, length="-999"), 400),
    # §3.1.2.4 scalar02: overlarge scalar fields (CSeq, Max-Forwards, Expires)
    "scalar02": (_req("REGISTER", "sip:127.0.0.1:{port}", "Expires: 10000000000000000000000\r\n",
                      cseq="36893488147419103232 REGISTER"), 400),
    # §3.1.2.6 quotbal: unterminated quoted string in a display name
    "quotbal": (_req("OPTIONS", "sip:127.0.0.1:{port}").replace("From: <sip:caller", 'From: "Bob <sip:caller'), None),
    # §3.1.2.7 ltgtruri: <> around the Request-URI
    "ltgtruri": (_req("OPTIONS", "<sip:127.0.0.1:{port}>"), 400),
    # §3.1.2.9 lwsstart: several SP between request-line elements
    "lwsstart": (_req("OPTIONS", "sip:127.0.0.1:{port}").replace("OPTIONS sip", "OPTIONS  sip", 1), None),
    # §3.1.2.10 trws: SP at the end of the request line
    "trws": (_req("OPTIONS", "sip:127.0.0.1:{port}").replace(" SIP/2.0\r\n", " SIP/2.0 \r\n", 1), None),
    # §3.1.2.13 regbadct: a Contact URI with parameters not enclosed in <>: the params are the header's
    "regbadct": (_req("REGISTER", "sip:127.0.0.1:{port}", "Contact: sip:user@127.0.0.1?Route=%3Csip:x%3E\r\n"), 401),
    # §3.1.2.16 badvers: unknown protocol version
    "badvers": (_req("OPTIONS", "sip:127.0.0.1:{port}").replace(" SIP/2.0\r\n", " SIP/7.0\r\n", 1), 505),
    # §3.1.2.17 mismatch01: start line and CSeq method differ
    "mismatch01": (_req("OPTIONS", "sip:127.0.0.1:{port}", cseq="1 INVITE"), 400),
    # §3.1.2.18 mismatch02: unknown method, CSeq method differs
    "mismatch02": (_req("NEWMETHOD", "sip:127.0.0.1:{port}", cseq="1 INVITE"), 400),
    # §3.3.1 insuf: missing required headers (Call-ID, From, To gone)
    "insuf": ("INVITE sip:1234@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ua};branch=z9hG4bKinsuf\r\n"
              "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", 400),
    # §3.3.2 unkscm: Request-URI of an unknown scheme
    "unkscm": (_req("OPTIONS", "nobodyknowsthisscheme:totallyopaquecontent"), 416),
    # §3.3.5 bext01: Require with an unknown option tag
    "bext01": (_req("OPTIONS", "sip:127.0.0.1:{port}", "Require: nothingSupportsThis, nothingSupportsThisEither\r\n"),
               420),
    # §3.3.7 regaut01: an authorization scheme nobody knows
    "regaut01": (_req("REGISTER", "sip:127.0.0.1:{port}", "Contact: <sip:desk-101@127.0.0.1:{ua}>\r\n"
                      "Authorization: NoOneKnowsThisScheme opaque-data=here\r\n"), 403),
    # §3.3.8 multi01: several values in single-value headers (two To, two Call-IDs)
    "multi01": (_req("INVITE", "sip:1234@127.0.0.1:{port}", "To: <sip:other@127.0.0.1>\r\nCall-ID: second@t\r\n"
                     "Content-Type: application/sdp\r\n", SDP), 400),
    # §3.3.9 mcl01: several Content-Length values
    "mcl01": (_req("OPTIONS", "sip:127.0.0.1:{port}", "Content-Length: 0\r\nContent-Length: 12\r\n", "", length="0"),
              400),
    # §3.3.11 zeromf: Max-Forwards of zero on a non-OPTIONS request
    "zeromf": (_req("REGISTER", "sip:127.0.0.1:{port}").replace("Max-Forwards: 70", "Max-Forwards: 0"), 483),
    # an INVITE with both a To tag that matches no dialog (a stray mid-dialog request)
    "stray_reinvite": (_req("INVITE", "sip:1234@127.0.0.1:{port}").replace("To: <sip:desk-101@127.0.0.1>",
                                                                         "To: <sip:desk-101@127.0.0.1>;tag=nope"), 481),
}


def datagram(name: str, port: int, ua: int) -> bytes:
    text = CASES[name][0]
    return text.replace("{name}", name).replace("{port}", str(port)).replace("{ua}", str(ua)).encode()
