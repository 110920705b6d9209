"""Digest security: replays refused, unknown users answered like wrong passwords, failures throttled,
SHA-256-only deployments refuse MD5. Real UDP against the running service (one process and workers)."""
from __future__ import annotations

import hashlib

import pytest

from confctl.app import make_app
from confctl.config import Settings
from confctl.keys import SIP_ENDPOINT
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.topology import demo_topology_path
from sip_stub.fields import parse_auth
from sip_stub.message import Response, parse_message
from tests.sip.test_sipp import bound_sip_port, sip  # noqa: F401  (fixture)
from tests.sip.test_workers import plane  # noqa: F401  (fixture)
from tests.sip.udp_client import UdpClient, udp_client


class Registrar:
    """Builds REGISTERs by hand, so a test can answer a challenge, then replay or alter the answer."""

    def __init__(self, ua: UdpClient, port: int, user: str = "desk-101"):
        self.ua, self.port, self.user, self.n = ua, port, user, 0

    def request(self, auth: str = "", contact_port: int | None = None, branch: str | None = None) -> bytes:
        self.n += 1
        return (f"REGISTER sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.ua.port};branch={branch or f'z9hG4bKsec{self.n}'}\r\n"
                f"From: <sip:{self.user}@127.0.0.1>;tag=s1\r\nTo: <sip:{self.user}@127.0.0.1>\r\n"
                f"Call-ID: sec-{self.user}@t\r\nCSeq: {self.n} REGISTER\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{contact_port or self.ua.port}>\r\nMax-Forwards: 70\r\n"
                f"{auth}Content-Length: 0\r\n\r\n").encode()

    async def final(self) -> Response:
        while True:
            msg = parse_message(await self.ua.recv())
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    async def challenge(self, algorithm: str = "MD5") -> dict[str, str]:
        self.ua.send(self.request(), self.port)
        r = await self.final()
        assert r.status == 401
        return parse_auth(next(v for v in r.header_all("WWW-Authenticate") if f"algorithm={algorithm}" in v))[1]

    def answer(self, c: dict[str, str], password: str, algorithm: str = "MD5", nc: str = "00000001",
               user: str | None = None) -> str:
        user = user or self.user
        h = lambda s: (hashlib.md5 if algorithm == "MD5" else hashlib.sha256)(s.encode()).hexdigest()  # noqa: E731
        uri = f"sip:127.0.0.1:{self.port}"
        ha1, ha2 = h(f"{user}:{c['realm']}:{password}"), h(f"REGISTER:{uri}")
        response = h(f"{ha1}:{c['nonce']}:{nc}:abc:auth:{ha2}")
        return (f'Authorization: Digest username="{user}", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{uri}", '
                f'response="{response}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="abc"\r\n')


async def _replay_is_refused(port: int) -> None:
    ua = await udp_client()
    try:
        reg = Registrar(ua, port)
        auth = reg.answer(await reg.challenge(), "s3cret-pass")
        first = reg.request(auth)
        ua.send(first, port)
        assert (await reg.final()).status == 200
        ua.send(first, port)  # a retransmission (the 200 was lost): byte for byte the same, answered again
        assert (await reg.final()).status == 200
        # the captured answer with another Contact: the attacker's address
        ua.send(reg.request(auth, contact_port=9), port)
        refused = await reg.final()
        assert refused.status == 403 and "replayed" in refused.reason
        # the same nonce with the next nonce-count is a legitimate reuse (RFC 7616 §3.4.5)
        c = parse_auth(auth.split(": ", 1)[1].strip())[1]
        ua.send(reg.request(reg.answer(c, "s3cret-pass", nc="00000002")), port)
        assert (await reg.final()).status == 200
    finally:
        ua.transport.close()


async def test_a_replayed_digest_is_refused(sip):  # noqa: F811
    port, store, server = sip
    await _replay_is_refused(port)
    (binding,) = store.bindings("desk-101", 0)
    assert not binding.contact.endswith(":9")  # the replay took nothing over
    assert server.app[SIP_ENDPOINT].stats["auth_replayed"] == 1


async def test_a_replay_is_refused_whichever_worker_reads_it(plane):  # noqa: F811
    port, store, _, status = plane
    for _ in range(3):  # several rounds: the answer and its replay land on either worker
        await _replay_is_refused(port)
    assert all(not b.contact.endswith(":9") for b in store.bindings("desk-101", 0))


async def test_unknown_users_and_wrong_passwords_are_answered_alike(sip):  # noqa: F811
    port, store, _ = sip
    store.add_account("desk-102", "cc-nongan", "another-pass", "confctl")
    ua = await udp_client()
    try:
        answers = []
        for user, password in (("desk-102", "wrong-pass"), ("nobody-here", "wrong-pass")):
            reg = Registrar(ua, port, user)
            ua.send(reg.request(reg.answer(await reg.challenge(), password)), port)
            r = await reg.final()
            answers.append((r.status, r.reason))
        assert answers[0] == answers[1] == (403, "Forbidden")
    finally:
        ua.transport.close()


async def test_repeated_failures_are_throttled_even_for_the_right_password(sip):  # noqa: F811
    port, _, server = sip
    ua = await udp_client()
    try:
        reg = Registrar(ua, port)
        for _ in range(10):
            ua.send(reg.request(reg.answer(await reg.challenge(), "guess")), port)
            assert (await reg.final()).status == 403
        ua.send(reg.request(reg.answer(await reg.challenge(), "s3cret-pass")), port)
        r = await reg.final()
        assert r.status == 403 and "too many" in r.reason
        stats = server.app[SIP_ENDPOINT].stats
        assert stats["auth_failed"] == 10 and stats["auth_throttled"] == 1
    finally:
        ua.transport.close()


@pytest.fixture
async def sha256_only(aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/sha.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=0,
                                                    sip_digest=("SHA-256",))))
    port = bound_sip_port(server.app)
    store = SipStore(make_engine(url))
    store.add_account("desk-101", "cc-nongan", "s3cret-pass", "confctl")
    yield port
    store.engine.dispose()


async def test_sha256_only_refuses_a_correct_md5_answer(sha256_only):
    port = sha256_only
    ua = await udp_client()
    try:
        reg = Registrar(ua, port)
        c = await reg.challenge("SHA-256")
        ua.send(reg.request(reg.answer(c, "s3cret-pass", algorithm="MD5")), port)
        assert (await reg.final()).status == 403
        c = await reg.challenge("SHA-256")
        ua.send(reg.request(reg.answer(c, "s3cret-pass", algorithm="SHA-256")), port)
        assert (await reg.final()).status == 200
    finally:
        ua.transport.close()
