"""Tokens with a life: they expire, are revoked (ending the browser sessions signed in with them), rotate
without losing the user; and a signed-in browser's writes must name our origin (CSRF, login CSRF)."""
from __future__ import annotations

import hashlib
import subprocess
import time

import pytest
from sqlalchemy import text, update

from confctl.cli.main import main as cli
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.store.tables import ApiTokenRow
from rooms.store.users import UserStore
from tests.conftest import empty_pg_schema, require_postgres
from tests.media.node_processes import CONFCTL

ORIGIN = "http://127.0.0.1"


def _expire(db_url: str, token_id: str | None = None) -> None:
    engine = make_engine(db_url)
    table = ApiTokenRow.__table__
    with engine.begin() as conn:
        q = update(table).values(expires_at=int(time.time()) - 1)
        conn.execute(q.where(table.c.id == token_id) if token_id else q)
    engine.dispose()


async def _sign_in(api, token: str) -> dict[str, str]:
    r = await api.post("/api/signin", json={"token": token})
    assert r.status == 200, await r.text()
    return {"Cookie": r.headers["Set-Cookie"].split(";")[0]}


async def test_a_revoked_token_is_refused_at_once_and_its_browser_sessions_end(api):
    me = api.h("olga")
    issued = await api.post("/api/tokens", json={"label": "laptop", "days": 30}, headers=me)
    assert issued.status == 201
    laptop = await issued.json()
    cookie = await _sign_in(api, laptop["token"])
    assert (await api.get("/api/me", headers=cookie)).status == 200
    from confctl.keys import API_TOKENS
    assert api.app[API_TOKENS].flush_last_used() >= 1  # what the service's loop does every 15 s
    listed = (await (await api.get("/api/tokens", headers=me)).json())["tokens"]
    row = next(t for t in listed if t["id"] == laptop["id"])
    assert row["label"] == "laptop" and row["last_used_at"] and row["expires_at"] - row["created_at"] == 30 * 86400
    revoked = await api.delete(f"/api/tokens/{laptop['id']}", headers=me)
    assert revoked.status == 200 and (await revoked.json())["revoked"] is True
    r = await api.get("/api/me", headers={"Authorization": f"Bearer {laptop['token']}"})
    assert r.status == 401 and "revoked" in (await r.json())["detail"]
    assert (await api.get("/api/me", headers=cookie)).status == 401  # the browser signed in with it is out
    assert (await api.get("/api/me", headers=me)).status == 200  # the user's other token still works


async def test_an_expired_token_is_refused_and_cannot_sign_in(api, db_url):
    _expire(db_url)
    r = await api.get("/api/me", headers=api.h("olga"))
    assert r.status == 401 and "expired" in (await r.json())["detail"]
    r = await api.post("/api/signin", json={"token": api.tokens["olga"]})
    assert r.status == 401


async def test_rotation_hands_a_new_token_and_revokes_the_old_one_and_nobody_manages_anothers(api):
    mine = (await (await api.get("/api/tokens", headers=api.h("olga"))).json())["tokens"]
    assert [t["user"] for t in mine] == ["olga"]  # only one's own
    r = await api.post(f"/api/tokens/{mine[0]['id']}/rotate", headers=api.h("tina"))
    assert r.status == 404  # another's token is as good as unknown
    r = await api.post(f"/api/tokens/{mine[0]['id']}/rotate", json={"days": 7}, headers=api.h("olga"))
    assert r.status == 201
    fresh = (await r.json())["token"]
    assert (await api.get("/api/me", headers=api.h("olga"))).status == 401
    assert (await (await api.get("/api/me", headers={"Authorization": f"Bearer {fresh}"})).json())["name"] == "olga"
    again = await api.post(f"/api/tokens/{mine[0]['id']}/rotate", headers={"Authorization": f"Bearer {fresh}"})
    assert again.status == 409
    everyone = (await (await api.get("/api/tokens", headers=api.h("ada"))).json())["tokens"]
    assert {"olga", "tina", "ada"} <= {t["user"] for t in everyone}
    assert all("token" not in t and "token_hash" not in t for t in everyone)  # never shown again


def test_the_cli_lists_issues_and_revokes_tokens(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/cli.db"
    cli(["topology", "load", "rooms/data/jilin.yaml", "--db", db])
    cli(["users", "add", "olga", "--role", "organizer", "--days", "10", "--db", db])
    first = capsys.readouterr().out.strip().splitlines()[-1]
    cli(["tokens", "issue", "olga", "--label", "script", "--db", db])
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert first.startswith("cct_") and second.startswith("cct_") and first != second
    cli(["tokens", "list", "--user", "olga", "--db", db])
    listing = capsys.readouterr().out
    assert "first token" in listing and "script" in listing and listing.count(" live") == 2
    cli(["tokens", "revoke", "--user", "olga", "--db", db])
    assert "revoked 2 token(s)" in capsys.readouterr().out
    r = subprocess.run([CONFCTL, "tokens", "revoke", "tok_nope", "--db", db], capture_output=True, text=True)
    assert r.returncode == 2 and "no live token tok_nope" in r.stderr
    r = subprocess.run([CONFCTL, "users", "add", "n", "--role", "node", "--db", db], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "confctl nodes add" in r.stderr
    r = subprocess.run([CONFCTL, "nodes", "add", "node-atlantis", "--db", db], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "not a media node of the topology" in r.stderr


async def test_a_signed_in_write_without_an_origin_is_refused(api):
    cookie = await _sign_in(api, api.tokens["olga"])
    r = await api.post("/api/feed-tokens", json={}, headers=cookie)  # no Origin, no Sec-Fetch-Site
    assert r.status == 403 and (await r.json())["error"] == "cross_origin"
    r = await api.post("/api/feed-tokens", json={}, headers={**cookie, "Sec-Fetch-Site": "same-site"})
    assert r.status == 403  # a sibling host is not us
    host = f"http://{api.server.host}:{api.server.port}"
    r = await api.post("/api/feed-tokens", json={}, headers={**cookie, "Origin": host})
    assert r.status == 201
    r = await api.post("/api/feed-tokens", json={}, headers={**cookie, "Sec-Fetch-Site": "same-origin"})
    assert r.status == 201


async def test_login_csrf_another_site_cannot_sign_a_browser_in_to_its_account(api):
    # The attacker's page posts its own token as text/plain (no preflight) from its own origin.
    r = await api.post("/api/signin", data=f'{{"token": "{api.tokens["olga"]}"}}',
                       headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
    assert r.status == 403 and "Set-Cookie" not in r.headers
    r = await api.post("/api/signin", data=f'{{"token": "{api.tokens["olga"]}"}}',
                       headers={"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    r = await api.post("/api/signin", data=f'{{"token": "{api.tokens["olga"]}"}}', headers={"Content-Type": "text/plain"})
    assert r.status == 415  # a form or plain-text post, even without an origin, is not a sign-in


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated_url(request, tmp_path, pg_reason):
    """An empty database on each backend, for a migration to start from where it likes."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/old.db"
        return
    require_postgres(pg_reason)
    with empty_pg_schema() as url:
        yield url


def test_tokens_issued_before_expiry_existed_keep_working_for_90_days_after_the_upgrade(unmigrated_url):
    engine = make_engine(unmigrated_url)
    upgrade(engine, "0013_preemption")
    old = "cct_" + "a" * 43
    with engine.begin() as conn:
        conn.execute(text('INSERT INTO "user" (id, name, role, site_id, token_hash, permissions, created_at) '
                          "VALUES ('usr_old', 'veteran', 'operator', NULL, :h, '', 1)"),
                     {"h": hashlib.sha256(old.encode()).hexdigest()})
    upgrade(engine)
    users = UserStore(engine)
    assert users.by_token(old).name == "veteran"
    assert users.by_token(old, now=int(time.time()) + 91 * 86400) is None
    engine.dispose()


async def test_a_technician_reads_only_their_own_sites_links_and_no_session_ids(api):
    from tests.conftest import booking
    r = await api.post("/api/sessions", json=booking(["jl", "cc-nongan", "sp"]), headers=api.h("olga"))
    assert r.status == 201
    when = {"from": (await r.json())["start"]}
    own = await api.get("/api/links/cc-nongan/load", params=when, headers=api.h("tina"))  # Nong'an's technician
    body = await own.json()
    assert own.status == 200 and body["down"]["peak_kbps"] > 0 and "sessions" not in body["down"]
    assert (await api.get("/api/links/cc/load", headers=api.h("tina"))).status == 200  # Changchun's uplink: on the path
    other = await api.get("/api/links/sp/load", headers=api.h("tina"))  # Siping's: another site's
    assert other.status == 403
    organizer = await (await api.get("/api/links/sp/load", params=when, headers=api.h("olga"))).json()
    assert organizer["down"]["sessions"]  # organizers and operators still see which sessions load it


async def test_expiry_cannot_be_outlived_through_a_browser_session_or_a_longer_token(api, db_url):
    me = api.h("olga")
    short = await (await api.post("/api/tokens", json={"days": 5}, headers=me)).json()
    # A token made with a token lives no longer than it: asking for ten years gives the caller's own expiry.
    made = await (await api.post("/api/tokens", json={"days": 3650},
                                 headers={"Authorization": f"Bearer {short['token']}"})).json()
    mine = {t["id"]: t for t in (await (await api.get("/api/tokens", headers=me)).json())["tokens"]}
    assert mine[made["id"]]["expires_at"] <= mine[short["id"]]["expires_at"]
    # A browser signed in with a token is out when that token expires, whatever its 12 hours say.
    cookie = await _sign_in(api, short["token"])
    host = {"Origin": f"http://{api.server.host}:{api.server.port}"}
    assert (await api.get("/api/me", headers=cookie)).status == 200
    _expire(db_url, short["id"])
    assert (await api.get("/api/me", headers=cookie)).status == 401
    assert (await api.post("/api/tokens", json={"days": 3650}, headers={**cookie, **host})).status == 401
    # An administrator may still give a person a fresh, long-lived token.
    r = await api.post("/api/tokens", json={"days": 365, "user_id": (await (await api.get("/api/me", headers=me)).json())["id"]},
                       headers=api.h("ada"))
    assert r.status == 201


async def test_revoking_every_token_of_a_user_ends_their_calendar_feeds_too(api):
    from confctl.keys import API_TOKENS
    feed = await (await api.post("/api/feed-tokens", json={}, headers=api.h("tina"))).json()
    url = f"/api/sites/cc-nongan/calendar.ics?token={feed['token']}"
    assert (await api.get(url)).status == 200
    tina = (await (await api.get("/api/me", headers=api.h("tina"))).json())["id"]
    api.app[API_TOKENS].revoke_user(tina, int(time.time()))  # what `confctl tokens revoke --user tina` calls
    assert (await api.get(url)).status == 401  # the feed carried her site's join links
