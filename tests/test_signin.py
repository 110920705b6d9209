"""Signing in from a browser: a cookie session (HttpOnly, SameSite), pages by role, sign-out, feed tokens."""
from __future__ import annotations

import pytest

from confctl.app import make_app
from confctl.config import Settings
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users


@pytest.fixture
async def web_client(aiohttp_client, tmp_path):
    url = f"sqlite:///{tmp_path}/signin.db"
    c = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url)))
    c.tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None),
                               ("tina", Role.TECHNICIAN, "cc-nongan")])
    yield c


async def test_a_token_becomes_an_httponly_samesite_cookie_that_every_page_and_call_uses_until_sign_out(web_client):
    c = web_client
    r = await c.get("/operator", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] in ("/signin?next=/operator", "/signin?next=%2Foperator")
    r = await c.post("/api/signin", json={"token": c.tokens["opal"]})
    assert r.status == 200 and (await r.json())["user"]["role"] == "operator"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert c.tokens["opal"] not in cookie  # the token itself never becomes the cookie
    assert (await c.get("/operator")).status == 200
    assert (await (await c.get("/api/me")).json())["name"] == "opal"  # the API reads the cookie too
    assert (await c.get("/api/alarms")).status == 200
    assert (await c.post("/api/signout")).status == 200
    assert (await c.get("/api/me")).status == 401
    assert (await c.get("/operator", allow_redirects=False)).status == 302


async def test_a_signed_in_person_without_the_role_gets_a_page_saying_so(web_client):
    c = web_client
    await c.post("/api/signin", json={"token": c.tokens["olga"]})
    r = await c.get("/operator")
    assert r.status == 403 and "This page is for operators" in await r.text() and "olga" in await r.text()
    assert (await c.get("/book")).status == 200


async def test_sign_in_refuses_unknown_tokens_and_changes_from_other_sites(web_client):
    c = web_client
    for body in ({"token": "cct_" + "x" * 43}, {"token": "garbage"}):
        r = await c.post("/api/signin", json=body)
        assert r.status == 401 and (await r.json())["error"] == "invalid_token"
    assert (await c.post("/api/signin", json={})).status == 422
    await c.post("/api/signin", json={"token": c.tokens["olga"]})
    r = await c.post("/api/feed-tokens", json={"label": "x"}, headers={"Origin": "http://evil.example"})
    assert r.status == 403 and (await r.json())["error"] == "cross_origin"


async def test_feed_tokens_read_calendars_only_and_stop_when_revoked(web_client):
    c = web_client
    h = {"Authorization": f"Bearer {c.tokens['tina']}"}
    r = await c.post("/api/feed-tokens", json={"label": "phone calendar"}, headers=h)
    assert r.status == 201
    feed = await r.json()
    ics = await c.get(f"/api/sites/cc-nongan/calendar.ics?token={feed['token']}")
    assert ics.status == 200 and "BEGIN:VCALENDAR" in await ics.text()
    assert (await c.get("/api/me", headers={"Authorization": f"Bearer {feed['token']}"})).status == 401
    assert (await c.get(f"/api/me?token={feed['token']}")).status == 401  # only .ics reads it
    listed = (await (await c.get("/api/feed-tokens", headers=h)).json())["feed_tokens"]
    assert [x["label"] for x in listed] == ["phone calendar"] and "token" not in listed[0]
    assert (await c.delete(f"/api/feed-tokens/{feed['id']}", headers=h)).status == 200
    assert (await c.get(f"/api/sites/cc-nongan/calendar.ics?token={feed['token']}")).status == 401


async def test_join_info_answers_a_join_link_and_refuses_others_in_words(web_client):
    c = web_client
    assert (await c.get("/api/join-info?token=nonsense")).status == 422
    forged = await c.get("/api/join-info?token=c2VzX3gKamw.AAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status == 404 and "join link" in (await forged.json())["detail"]


async def test_join_info_tells_a_satellite_site_its_link_is_slow_by_nature(web_client):
    h = {"Authorization": f"Bearer {web_client.tokens['olga']}"}
    from tests.conftest import booking
    r = await web_client.post("/api/sessions", json=booking(["jl", "jl-vehicle"], profile="sd"), headers=h)
    s = await r.json()
    token = s["join_urls"]["jl-vehicle"].split("token=")[1]
    info = await (await web_client.get(f"/api/join-info?token={token}")).json()
    assert info["rtt_ms"] == 600 and info["site_name"] == "Provincial Emergency Command Vehicle"
    assert info["title"] == s["title"] and info["profile"]["name"] == "sd"
