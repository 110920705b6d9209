"""Every route the app builds, sent NUL, control characters, bidi overrides and 2^70 in each path
parameter, each query parameter and each field of its body, on SQLite and PostgreSQL: a 4xx with a
JSON `{error, detail}` every time, never a 500 (PostgreSQL refuses NUL in text: a DataError before).
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Iterator

import pytest
from aiohttp import web

from confctl.app import all_routes
from confctl.input_guard import PATH_SHAPES, shape_of
from tests.conftest import booking

BIG = 2 ** 70
# As they appear in a URL: percent-encoded, decoded by the server.
PATH_VALUES = ["%00", "ses_%00", "%0A", "x%0D%0AWARNING%20forged", "%1B%5B31m", "%7F", "%C2%85", "%E2%80%AE",
               "%ED%A0%80", str(BIG), str(-BIG), "9223372036854775808"]
# Invalid UTF-8 stays "%ED%A0%80" in a path (no id has that shape) and becomes U+FFFD, printable, in a query.
QUERY_VALUES = [v for v in PATH_VALUES if v != "%ED%A0%80"]
TEXT_VALUES = ["\x00", "a\x00b", "\n", "x\r\nWARNING forged", "\x1b[31m", "\x7f", "\x85", "\u202e", "\ud800"]
ROLE_FOR = {"node": "nora", "admin": "ada", "organizer": "olga", "operator": "opal", "technician": "tina", "public": "ada"}

# A valid body per body model: each test mutates one field of it, so the hostile value reaches
# whatever a real request would reach.
EXAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "BookingBody": booking(["jl", "cc-nongan"]),
    "BookingPatch": {"title": "Moved briefing", "profile": "sd"},
    "NewEmergency": {"title": "Flood", "sites": ["jl", "cc"], "hours": 1.0, "profile": "sd"},
    "TopologyDocument": {"network": "t", "name": "Test", "sites": [
        {"id": "a", "level": "province", "name": "A", "rooms": [{"id": "m", "name": "Main"}]},
        {"id": "b", "level": "county", "parent": "a", "uplink_mbps": 10, "media_node_legs": 10,
         "rooms": [{"id": "m"}]}]},
    "NewUser": {"name": "Zoe Example", "role": "organizer", "site": "cc-nongan"},
    "UserChange": {"email": "zoe@jl.example"},
    "SignIn": {"token": "cct_" + "A" * 43},
    "NewFeedToken": {"label": "my phone"},
    "NodeRegistration": {"id": "node-jl", "url": "http://127.0.0.1:9",
                         "load": {"legs": 1, "rooms": 1, "cpu_percent": 1.5, "kbps_in": 1, "kbps_out": 1}},
    "NewSipAccount": {"username": "desk101", "site": "cc", "password": "long secret 1"},
    "DialOut": {"account": "desk101"},
    "NewToken": {"label": "laptop", "days": 30},
    "Rotation": {"days": 30},
}


def _leaves(doc: Any, at: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, at + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, at + (i,))
    else:
        yield at, doc


def _with(doc: Any, at: tuple, value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for key in at[:-1]:
        target = target[key]
    target[at[-1]] = value
    return out


def body_mutations(example: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """One hostile value in one field at a time: control characters in strings, 2^70 in numbers."""
    for at, value in _leaves(example):
        where = ".".join(map(str, at))
        if isinstance(value, str):
            for bad in TEXT_VALUES:
                yield where, _with(example, at, value + bad)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield where, _with(example, at, BIG)
            yield where, _with(example, at, -BIG)


def _valid_params(template: str, session_id: str) -> dict[str, str]:
    return {"id": "1" if template.startswith("/api/alarms/") else
            "feed_0000000000000000" if template.startswith("/api/feed-tokens/") else
            "tok_0000000000000000" if template.startswith("/api/tokens/") else session_id,
            "site": "cc-nongan", "name": "x.webm"}


def _fill(template: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template


def _params(template: str) -> list[str]:
    return [p.split("}")[0] for p in template.split("{")[1:]]


async def _refusal_problem(resp, what: str) -> str | None:
    """None for a 4xx JSON {error, detail}; otherwise what came back."""
    if resp.content_type == "text/event-stream":  # a live feed that opened never ends
        resp.close()
        return f"{what} -> {resp.status} (a live feed opened)"
    text = await resp.text()
    if not 400 <= resp.status < 500 or resp.content_type != "application/json":
        return f"{what} -> {resp.status} {text[:300]}"
    body = await resp.json()
    if not isinstance(body.get("error"), str) or "detail" not in body:
        return f"{what} -> {resp.status} {text[:300]}"
    return None


async def _assert_refused(resp, what: str) -> None:
    problem = await _refusal_problem(resp, what)
    assert problem is None, problem


async def test_every_route_refuses_hostile_path_query_and_body_values(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "cc-nongan"]), headers=api.h("olga"))).json()
    routes = sorted(all_routes(), key=lambda r: r.method == "DELETE")
    checked, failures = 0, []
    for r in routes:
        who = api.h(ROLE_FOR["admin" if "admin" in r.roles or r.public else r.roles[0]])
        valid = _valid_params(r.path, s["id"])
        for name in _params(r.path):
            for bad in PATH_VALUES:
                path = _fill(r.path, {**valid, name: bad})
                failures.append(await _refusal_problem(await api.request(r.method, path, headers=who), f"{r.method} {path}"))
                checked += 1
        queries = [q for q, _ in r.query] + (["unlisted"] if r.method == "GET" else [])
        for q in queries:
            for bad in QUERY_VALUES:
                path = _fill(r.path, valid) + f"?{q}={bad}"
                resp = await api.request(r.method, path, headers=who)
                failures.append(await _refusal_problem(resp, f"{r.method} {path}"))
                checked += 1
        if r.body is not None and not isinstance(r.body, dict):
            example = EXAMPLE_BODIES[r.body.__name__]
            for where, doc in body_mutations(example):
                resp = await api.request(r.method, _fill(r.path, valid), json=doc, headers=who)
                failures.append(await _refusal_problem(resp, f"{r.method} {r.path} {where}={_leaf(doc, where)!r}"))
                checked += 1
    failures = [f for f in failures if f is not None]
    assert not failures, f"{len(failures)} of {checked} not refused:\n" + "\n".join(failures[:60])
    assert checked > 1000


def _leaf(doc: Any, where: str) -> Any:
    for key in where.split("."):
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


@pytest.mark.parametrize("path", ["/sessions/%00", "/sessions/a%0Ab", "/join?token=%00", "/signin?next=%0A",
                                  "/static/%00", "/api/viewer/%00"])
async def test_pages_and_files_refuse_hostile_values_too(api, path):
    await _assert_refused(await api.get(path, headers=api.h("ada"), allow_redirects=False), path)


def test_every_path_parameter_of_every_route_has_a_shape():
    app_params = {(r.path, p) for r in all_routes() for p in _params(r.path)}
    for path, param in app_params:
        assert shape_of(path, param) is not None, (path, param)
    assert set(PATH_SHAPES) >= {"id", "site", "name"}


def test_route_examples_cover_every_body_model():
    models = {r.body.__name__ for r in all_routes() if r.body is not None and not isinstance(r.body, dict)}
    assert models <= set(EXAMPLE_BODIES), models - set(EXAMPLE_BODIES)


@pytest.mark.parametrize("name", ["a\x00b", "Zoe\u202eevil", "<script>alert(1)</script>", "tab\there", " Zoe",
                                  "zero\u200bwidth", "\ud800"])
async def test_user_names_and_feed_token_labels_are_printable_text(api, name):
    r = await api.post("/api/users", json={"name": name, "role": "organizer"}, headers=api.h("ada"))
    await _assert_refused(r, name)
    assert r.status == 422
    r = await api.post("/api/feed-tokens", json={"label": name}, headers=api.h("olga"))
    assert r.status == 422, await r.text()
    users = (await (await api.get("/api/users", headers=api.h("ada"))).json())["users"]
    assert {u["name"] for u in users} == set(api.tokens)  # the fixture's people, no one added


@pytest.mark.parametrize("name", ["Zoë Müller", "王伟", "O'Brien & Sons", "Desk 101 (night)", "علي"])
async def test_real_names_still_pass(api, name):
    r = await api.post("/api/users", json={"name": name, "role": "organizer"}, headers=api.h("ada"))
    assert r.status == 201, await r.text()
    r = await api.post("/api/feed-tokens", json={"label": name}, headers=api.h("olga"))
    assert r.status == 201, await r.text()


@pytest.mark.parametrize("title", ["Flood\x07", "Flood\u202e", "Flood\x85", "Flood\u2028x"])
async def test_an_emergency_title_with_a_control_character_is_a_422(api, title):
    r = await api.post("/api/emergencies", json={"title": title, "sites": ["jl", "cc"]}, headers=api.h("ada"))
    assert r.status == 422, await r.text()
    assert "title" in str((await r.json())["detail"])


async def test_an_alarm_id_past_what_a_row_id_can_be_is_a_404(api):
    # SQLite: OverflowError past 64 bits; PostgreSQL: "integer out of range" past 32 (SERIAL)
    for value in (str(BIG), "9223372036854775808", "9223372036854775807", "2147483648", str(-BIG), "0", "-1"):
        r = await api.post(f"/api/alarms/{value}/ack", headers=api.h("opal"))
        assert r.status == 404 and (await r.json())["error"] == "not_found", await r.text()
    r = await api.post("/api/alarms/2147483647/ack", headers=api.h("opal"))
    assert r.status == 404, await r.text()  # the largest row id is looked up, and absent


@pytest.mark.parametrize("value, status", [("1e400", 400), (str(BIG), 422), ('"a\\u0000b"', 422)])
async def test_a_number_past_64_bits_or_not_finite_is_refused_even_where_no_model_looks(api, value, status):
    # A topology document keeps keys it does not know (notes): such a value was stored as it came
    # (1e400 as Infinity, which is not JSON), to fail whoever read the document next.
    raw = ('{"network": "t", "extra": %s, "sites": [{"id": "a", "rooms": [{"id": "m"}]}, '
           '{"id": "b", "parent": "a", "uplink_mbps": 10, "rooms": [{"id": "m"}]}]}' % value)
    before = await (await api.get("/api/topology", headers=api.h("ada"))).json()
    r = await api.put("/api/topology", data=raw, headers=api.h("ada"))
    await _assert_refused(r, value)
    assert r.status == status, await r.text()
    assert await (await api.get("/api/topology", headers=api.h("ada"))).json() == before


FORGED = "WARNING confctl.auth: FORGED admin signed in"
FORGING = "%0AWARNING%20confctl.auth:%20FORGED%20admin%20signed%20in"


def _log_lines(records) -> list[str]:
    """Records as `confctl serve` writes them (one record may span lines: a traceback)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    return [line for rec in records for line in fmt.format(rec).splitlines()]


def _forged(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(FORGED) or line.startswith(FORGED.replace("WARNING ", ""))]


async def test_a_line_feed_in_a_path_cannot_forge_a_log_line(api, caplog):
    statuses = {}
    with caplog.at_level(logging.DEBUG):
        for path in (f"/api/sessions/%00{FORGING}", f"/api/sessions/x{FORGING}", f"/api/alarms/{BIG}{FORGING}/ack",
                     f"/api/preemptions?session=%00{FORGING}", f"/api/sessions{FORGING}"):
            r = await api.request("POST" if "/ack" in path else "GET", path, headers=api.h("ada"))
            statuses[path] = r.status
    lines = _log_lines(caplog.records)
    assert not _forged(lines), _forged(lines)
    assert all(400 <= s < 500 for s in statuses.values()), statuses


async def test_the_error_handler_logs_a_failing_path_escaped(aiohttp_client, caplog):
    """Whatever fails inside a handler, the path it logs stays on its line."""
    from confctl.errors import error_middleware

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/boom/{anything}", boom)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.DEBUG):
        r = await client.get(f"/boom/x{FORGING}")
        assert r.status == 500 and (await r.json())["error"] == "internal_error"
    lines = _log_lines(caplog.records)
    assert any("unhandled error on GET '/boom/x\\nWARNING" in line for line in lines), lines
    assert not _forged(lines), _forged(lines)


def test_the_access_log_writes_control_and_bidi_characters_as_escapes():
    from confctl.access_log import loggable
    assert loggable("/x\nWARNING forged\r\x1b[31m\u202e") == "/x\\x0aWARNING forged\\x0d\\x1b[31m\\u202e"
    assert loggable("/api/sessions?from=2026-12-01T09:00:00%2B08:00 王伟") == "/api/sessions?from=2026-12-01T09:00:00%2B08:00 王伟"
