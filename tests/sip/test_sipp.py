"""The SIP service against sipp, a real UAC, over UDP on a free port."""
from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path

import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.topology import demo_topology_path
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"


def free_udp_port() -> int:
    """For a process started outside this one that must be told its port (sipp's media, baresip): picked,
    released, then bound by it, which can race. In-process services bind 0 instead (bound_sip_port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bound_sip_port(app) -> int:
    """The port the app's SIP service bound (Settings(sip_port=0): the kernel's choice, no race)."""
    from confctl.keys import SIP_ENDPOINT
    return app[SIP_ENDPOINT].transport.get_extra_info("sockname")[1]


@pytest.fixture(params=[("MD5",)], ids=["md5"])
async def sip(request, aiohttp_server, tmp_path):
    url = f"sqlite:///{tmp_path}/sip.db"
    server = await aiohttp_server(make_app(Settings(topology_file=demo_topology_path(), db_url=url, sip_port=0, sip_digest=request.param)))
    port = bound_sip_port(server.app)
    store = SipStore(make_engine(url))
    store.add_account("desk-101", "cc-nongan", "s3cret-pass", "confctl")
    yield port, store, server
    store.engine.dispose()


async def sipp(port: int, scenario: str, *extra: str, calls: int = 5, rate: int = 10, cwd: Path,
               timeout: int = 30) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-r", str(rate),
        "-i", "127.0.0.1", "-p", "0", "-nostdin", "-timeout", str(timeout), "-timeout_error", "-trace_err", *extra,
        cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    errors = "".join(p.read_text(errors="replace") for p in cwd.glob("*_errors.log"))
    return proc.returncode, out.decode(errors="replace")[-2000:] + errors[-2000:]


async def test_options_answered(sip, tmp_path):
    port, _, _ = sip
    rc, log = await sipp(port, "options.xml", "-s", "conference", calls=20, rate=50, cwd=tmp_path)
    assert rc == 0, log


async def test_register_with_digest_auth_stores_the_binding(sip, tmp_path):
    port, store, _ = sip
    rc, log = await sipp(port, "register_auth.xml", "-s", "desk-101", "-au", "desk-101", "-ap", "s3cret-pass",
                         calls=3, cwd=tmp_path)
    assert rc == 0, log
    (binding,) = store.bindings("desk-101", int(time.time()))
    assert binding.contact.startswith("sip:desk-101@127.0.0.1:") and binding.expires_at > time.time() + 200


async def test_register_with_a_wrong_password_is_forbidden(sip, tmp_path):
    port, store, _ = sip
    rc, log = await sipp(port, "register_wrong_password.xml", "-s", "desk-101", "-au", "desk-101", "-ap", "guess",
                         calls=2, cwd=tmp_path)
    assert rc == 0, log  # the scenario expects 403
    assert store.bindings("desk-101", int(time.time())) == []


@pytest.mark.parametrize("sip", [("SHA-256", "MD5")], ids=["sha256-first"], indirect=True)
async def test_register_with_sha256_digest(sip):
    """RFC 8760, when configured: both challenges, SHA-256 first; a phone that picks SHA-256 registers with it."""
    import hashlib

    from sip_stub.fields import parse_auth
    from sip_stub.message import parse_message
    from tests.sip.udp_client import udp_client
    port, store, _ = sip
    ua = await udp_client()

    def register(cseq: int, auth: str = "") -> bytes:
        return (f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bKsha{cseq}\r\n"
                f"From: <sip:desk-101@127.0.0.1>;tag=1\r\nTo: <sip:desk-101@127.0.0.1>\r\nCall-ID: sha-test\r\n"
                f"CSeq: {cseq} REGISTER\r\nContact: <sip:desk-101@127.0.0.1:{ua.port}>;expires=120\r\nMax-Forwards: 70\r\n"
                f"{auth}Content-Length: 0\r\n\r\n").encode()
    ua.send(register(1), port)
    challenge = parse_message(await ua.recv())
    assert challenge.status == 401
    offered = {parse_auth(v)[1]["algorithm"]: parse_auth(v)[1] for v in challenge.header_all("WWW-Authenticate")}
    assert list(offered) == ["SHA-256", "MD5"]
    c = offered["SHA-256"]
    h = lambda s: hashlib.sha256(s.encode()).hexdigest()  # noqa: E731
    uri = f"sip:127.0.0.1:{port}"
    ha1, ha2 = h(f"desk-101:{c['realm']}:s3cret-pass"), h(f"REGISTER:{uri}")
    resp = h(f"{ha1}:{c['nonce']}:00000001:abcd:auth:{ha2}")
    auth = (f'Authorization: Digest username="desk-101", realm="{c["realm"]}", nonce="{c["nonce"]}", uri="{uri}", '
            f'response="{resp}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="abcd"\r\n')
    ua.send(register(2, auth), port)
    ok = parse_message(await ua.recv())
    assert ok.status == 200 and "expires=120" in ok.header("Contact")
    ua.transport.close()


async def test_retransmissions_recover_from_loss(sip, tmp_path):
    """sipp drops a fifth of what it sends and receives; its retransmissions still complete every transaction."""
    port, store, _ = sip
    rc, log = await sipp(port, "options.xml", "-s", "conference", "-lost", "20", calls=20, rate=20, cwd=tmp_path,
                         timeout=90)
    assert rc == 0, log
    # Random loss makes a run take 6 to 30 s here (a message lost three times waits 0.5+1+2 s):
    # sipp's whole-run timeout is raised so that only a transaction that never completes fails.
    rc, log = await sipp(port, "register_auth.xml", "-s", "desk-101", "-au", "desk-101", "-ap", "s3cret-pass",
                         "-lost", "20", calls=10, rate=10, cwd=tmp_path, timeout=90)
    assert rc == 0, log
