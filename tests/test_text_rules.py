"""The text rules (rooms/text.py) and the edge check built on them (confctl/input_guard.py), as pure functions."""
from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from confctl.errors import ApiError
from confctl.input_guard import body_problems, check_path, check_query
from rooms.text import Name, OneLine, TextKind, text_problem

ONE, NAME, FREE = TextKind.ONE_LINE, TextKind.NAME, TextKind.FREE_TEXT


@pytest.mark.parametrize("value, kind, refused", [
    ("Flood briefing", ONE, False), ("防汛会商 2026", ONE, False), ("a\tb", ONE, True), ("a\nb", ONE, True),
    ("a\x00b", ONE, True), ("a\x7f", ONE, True), ("a\x85", ONE, True), ("a\u2028b", ONE, True),
    ("a\u202eb", ONE, True), ("a\u2066b", ONE, True), ("a\ud800", ONE, True), ("a\u200bb", ONE, False),
    ("<b>bold</b>", ONE, False),
    ("line one\nline two\ttabbed\r\n", FREE, False), ("a\x00", FREE, True), ("a\x1b[31m", FREE, True),
    ("a\u202e", FREE, False), ("\ud800", FREE, True),
    ("Zoë Müller", NAME, False), ("王伟", NAME, False), ("O'Brien & Sons (night desk)", NAME, False),
    ("علي", NAME, False), ("<script>", NAME, True), ("a\u200bb", NAME, True), ("\ufeffadmin", NAME, True),
    (" Zoe", NAME, True), ("Zoe ", NAME, True), ("\u0301", NAME, True), ("x" * 201, NAME, True), ("a\tb", NAME, True),
])
def test_text_problem(value, kind, refused):
    assert (text_problem(value, kind) is not None) is refused, text_problem(value, kind)


def test_a_refusal_names_the_character_and_where_it_is():
    assert text_problem("ab\x00", ONE) == "one line of text may not contain a control character (U+0000) (at character 2)"
    assert "RIGHT-TO-LEFT OVERRIDE" in text_problem("a\u202e", ONE)
    assert "markup" in text_problem("<x>", NAME)


class _Form(BaseModel):
    title: OneLine
    who: Name


def test_the_pydantic_types_apply_the_same_rules_and_document_them():
    assert _Form(title="Flood", who="Zoë").title == "Flood"
    with pytest.raises(ValidationError) as err:
        _Form(title="Flood\n", who="<script>")
    assert {e["loc"][0] for e in err.value.errors()} == {"title", "who"}
    schema = _Form.model_json_schema()["properties"]
    assert "\\x00-\\x1f" in schema["title"]["pattern"] and "<>" in schema["who"]["pattern"]


def test_body_problems_walks_every_string_key_and_number():
    doc = {"title": "ok", "sites": ["jl", "cc\x00"], "layouts": {"a\nb": "full"}, "hours": 2 ** 64,
           "nested": [{"name": "<i>"}], "notes": "two\nlines", "flag": True, "ratio": 1e300}
    problems = {p["field"]: p["problem"] for p in body_problems(doc)}
    assert set(problems) == {"sites.1", "layouts.a\nb", "hours", "nested.0.name"}, problems
    assert "64 bits" in problems["hours"] and "markup" in problems["nested.0.name"]
    assert body_problems([[[["deep"]]]]) == [] and body_problems(None) == []


def test_body_problems_stops_at_its_limit():
    assert len(body_problems(["\x00"] * 10_000)) == 20


@pytest.mark.parametrize("route, params, status", [
    ("/api/sessions/{id}", {"id": "ses_0123456789abcdef"}, None),
    ("/api/sessions/{id}", {"id": "\x00"}, 422),
    ("/api/sessions/{id}", {"id": "a b"}, 404),
    ("/api/sessions/{id}", {"id": "1180591620717411303424"}, 404),
    ("/api/alarms/{id}/ack", {"id": "12"}, None),
    ("/api/alarms/{id}/ack", {"id": "2147483648"}, 404),
    ("/api/alarms/{id}/ack", {"id": "0"}, 404),
    ("/api/alarms/{id}/ack", {"id": "1" * 5000}, 404),
    ("/api/sessions/{id}/recordings/{name}", {"id": "ses_1", "name": "a..webm"}, None),
    ("/api/sessions/{id}/recordings/{name}", {"id": "ses_1", "name": "x" * 256}, 404),
    ("/static/{filename}", {"filename": "js/book.js"}, None),
    ("/static/{filename}", {"filename": "js/\x00"}, 422),
])
def test_check_path(route, params, status):
    if status is None:
        check_path(route, params)
        return
    with pytest.raises(ApiError) as err:
        check_path(route, params)
    assert err.value.status == status


@pytest.mark.parametrize("query, refused", [
    ({"from": "2026-12-01T09:00:00+08:00", "site": "cc-nongan"}, False),
    ({"site": "cc->jl"}, False), ({"limit": "200"}, False), ({"limit": "-9223372036854775808"}, False),
    ({"limit": "9223372036854775808"}, True), ({"anything": str(2 ** 70)}, True),
    ({"session": "ses_\x00"}, True), ({"x\n": "1"}, True), ({"site": "a b"}, True), ({"next": "/x\u202e"}, True),
    ({"session": ""}, False),
])
def test_check_query(query, refused):
    if not refused:
        check_query(query)
        return
    with pytest.raises(ApiError) as err:
        check_query(query)
    assert err.value.status == 422 and err.value.code == "invalid_query"
