"""HTTPS and WSS: the control plane and a node process over TLS, verifying each other against a private CA
(SSL_CERT_FILE), a one-line reason when they cannot, and what a secure origin promises browsers
(Secure cookie, Strict-Transport-Security, https:// join links) also behind a proxy (--public-url)."""
from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.node_processes import CONFCTL, free_port, wait_serving
from tests.media.peers import until
from tests.media.test_signalling import TZ, book

ROOT = Path(__file__).resolve().parent.parent


def make_ca(folder: Path, *names: str) -> Path:
    subprocess.run([str(ROOT / "scripts/dev-ca.sh"), str(folder), *names], check=True, capture_output=True)
    return folder


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> Path:
    return make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def control_plane_over_tls(tmp_path, tls_files):
    """`confctl serve` with --tls-cert/--tls-key on a free port, a database with the demo network and users."""
    db = f"sqlite:///{tmp_path}/tls.db"
    tokens = None
    port = free_port()
    serve = subprocess.Popen([CONFCTL, "serve", "--db", db, "--topology", str(demo_topology_path()), "--port", str(port),
                              "--sip-port", "0", "--tls-cert", str(tls_files / "server.pem"),
                              "--tls-key", str(tls_files / "server.key")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ctx = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    base = f"https://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_serving(http, base, serve, ctx)
            tokens = add_users(db, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None),
                                    ("node-jl", Role.NODE, None)])
            yield base, ctx, tokens, http
    finally:
        serve.terminate()
        serve.wait(timeout=15)


async def test_https_pages_carry_hsts_and_the_sign_in_cookie_is_secure(control_plane_over_tls):
    base, ctx, tokens, http = control_plane_over_tls
    async with http.get(f"{base}/signin", ssl=ctx) as r:
        assert r.status == 200 and r.headers["Strict-Transport-Security"].startswith("max-age=")
    async with http.post(f"{base}/api/signin", json={"token": tokens["olga"]}, ssl=ctx) as r:
        assert r.status == 200
        cookie = r.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
    # Without the CA the client refuses the server, as every confctl process does: no verify=False anywhere.
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with http.get(f"{base}/api/health"):
            pass


async def test_a_node_that_cannot_verify_the_control_plane_says_so_in_one_line_then_registers_with_the_ca(
        control_plane_over_tls, tmp_path, tls_files):
    base, ctx, tokens, http = control_plane_over_tls
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
    env["CONFCTL_NODE_TOKEN"] = tokens["node-jl"]
    argv = [CONFCTL, "media-node", "--control", base, "--id", "node-jl", "--recordings", str(tmp_path / "rec"),
            "--tls-cert", str(tls_files / "server.pem"), "--tls-key", str(tls_files / "server.key")]
    log = tmp_path / "untrusting.log"
    node = subprocess.Popen([*argv, "--port", str(free_port())], stdout=subprocess.DEVNULL, stderr=log.open("w"),
                            env=env)
    try:
        await until(lambda: "could not be verified" in log.read_text(), timeout=30, what="the TLS failure logged")
        (line,) = [l for l in log.read_text().splitlines() if "could not be verified" in l]
        assert f"TLS: the certificate of {base} could not be verified" in line and "SSL_CERT_FILE" in line
    finally:
        node.terminate()
        node.wait(timeout=15)
    port = free_port()
    node = subprocess.Popen([*argv, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**env, "SSL_CERT_FILE": str(tls_files / "ca.pem")})
    try:
        async def registered() -> list[dict]:
            async with http.get(f"{base}/api/media-nodes", ssl=ctx,
                                headers={"Authorization": f"Bearer {tokens['opal']}"}) as r:
                return [n for n in (await r.json())["nodes"] if not n["in_process"] and n["alive"]]
        await until(registered, timeout=30, what="the node registered over HTTPS")
        (entry,) = await registered()
        assert entry["url"] == f"https://127.0.0.1:{port}"  # browsers reach it over WSS
        async with http.get(f"https://127.0.0.1:{port}/health", ssl=ctx) as r:
            assert (await r.json())["registered"] is True
    finally:
        node.terminate()
        node.wait(timeout=15)


async def test_behind_a_proxy_the_public_url_makes_join_links_https_the_cookie_secure_and_pages_hsts(
        aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/proxy.db"
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url,
                                                    public_url="https://confctl.example:8443")))
    tokens = add_users(url, [("olga", Role.ORGANIZER, None)])
    client.h = {"Authorization": f"Bearer {tokens['olga']}"}
    s = await book(client, ["jl", "cc"], datetime.now(TZ))
    assert all(u.startswith("https://confctl.example:8443/join?token=") for u in s["join_urls"].values())
    r = await client.post("/api/signin", json={"token": tokens["olga"]})
    assert "Secure" in r.headers["Set-Cookie"]
    assert (await client.get("/signin")).headers["Strict-Transport-Security"].startswith("max-age=")
    # A signed-in browser's change from the public origin is its own; from another origin it is refused.
    cookie = {"Cookie": r.headers["Set-Cookie"].split(";")[0]}
    evil = await client.post("/api/feed-tokens", json={}, headers={**cookie, "Origin": "https://evil.example"})
    assert evil.status == 403 and (await evil.json())["error"] == "cross_origin"
    ok = await client.post("/api/feed-tokens", json={}, headers={**cookie, "Origin": "https://confctl.example:8443"})
    assert ok.status in (200, 201), await ok.text()


async def test_plain_http_on_localhost_carries_no_hsts(aiohttp_client, tmp_path):
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(),
                                                    db_url=f"sqlite:///{tmp_path}/plain.db")))
    r = await client.get("/signin")
    assert r.status == 200 and "Strict-Transport-Security" not in r.headers  # a browser would pin HTTPS it lacks
