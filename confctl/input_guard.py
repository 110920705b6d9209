"""The edge check: what a request carries is text a field may hold, and an id has the shape of one,
before any handler, database query or log line sees it.

One middleware, over every routed request (API routes, pages, static files):

- path parameters: one line of text (`rooms.text`), a whole number within 64 bits where a number is
  meant, and the shape of what they name (PATH_SHAPES, ROUTE_PATH_SHAPES); a value that cannot name
  anything is a 404 without a query, a control character a 422;
- query values (and names): one line of text, whole numbers within 64 bits, and the shape of the ids
  the API takes (QUERY_SHAPES): a 422 `invalid_query`;
- JSON bodies: every string one line of text (names and labels printable: NAME_KEYS; free text may
  hold line feeds and tabs: FREE_TEXT_KEYS), every whole number within 64 bits: a 422 `invalid_body`
  with the field, as pydantic's refusals read. The parsed body is kept for `confctl.errors.read_json`.

Why here and not per handler: PostgreSQL refuses NUL in text (a DataError, a 500), SQLite an integer
past 64 bits (OverflowError), and a line feed in a logged value forges a log line. One check at the
edge holds for every route, including the next one added.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from confctl.errors import JSON_BODY, ApiError, parse_json
from confctl.keys import run_read
from rooms.bulk import collector_paused
from rooms.text import TextKind, text_problem

INT64_MAX = 2 ** 63 - 1
WHOLE = re.compile(r"[+-]?[0-9]+")
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")  # sessions, tokens, sites, links, nodes: ASCII, no '/'
SITE_OR_TRUNK = re.compile(rf"{ID.pattern}(->{ID.pattern})?")  # a leg's site, or a trunk's child->parent
FILE_NAME = re.compile(r"[^/\\]{1,255}")  # a recording: one path segment
# Bodies this large are parsed and checked on a read thread, so the event loop keeps answering.
OFF_LOOP_BYTES = 64 * 1024
MAX_BODY_BYTES = 1_000_000  # as read_json; a larger body is refused there (413)

# Keys whose string values are names (people, labels, places): printable, no markup, no invisible characters.
NAME_KEYS = frozenset({"name", "name_zh", "label", "username"})
# Keys whose values are free text, where a line feed or a tab is content. None of the API's models has
# one today; a topology document may carry notes.
FREE_TEXT_KEYS = frozenset({"notes", "note", "description", "comment"})


@dataclass(frozen=True)
class Shape:
    what: str  # in words, for the refusal
    pattern: re.Pattern[str] | None = None
    whole: tuple[int, int] | None = None  # a whole number within these bounds

    def fits(self, value: str) -> bool:
        if self.whole is not None:
            number = _whole(value)
            return number is not None and self.whole[0] <= number <= self.whole[1]
        return self.pattern is None or self.pattern.fullmatch(value) is not None


AN_ID = Shape("an id (letters, digits, '_', '.', '-')", ID)
# Row ids are SERIAL on PostgreSQL (32 bits): a larger one names nothing, and is not looked up.
A_ROW_ID = Shape("a row id (a whole number from 1 to 2147483647)", whole=(1, 2 ** 31 - 1))
PATH_SHAPES: dict[str, Shape] = {
    "id": AN_ID,
    "site": Shape("a site id", ID),
    "name": Shape("a file name", FILE_NAME),
    "filename": Shape("a file path"),  # static files: aiohttp resolves it inside its folder
}
ROUTE_PATH_SHAPES: dict[tuple[str, str], Shape] = {
    ("/api/alarms/{id}/ack", "id"): A_ROW_ID,
}
# Ids in queries (numbers are the handlers' to range; past 64 bits any value is refused here).
QUERY_SHAPES: dict[str, Shape] = {
    "session": AN_ID, "emergency": AN_ID, "node": AN_ID,
    "site": Shape("a site id, or a trunk's child->parent", SITE_OR_TRUNK),
}


def shape_of(route_path: str, param: str) -> Shape | None:
    """The shape a path parameter must have on this route (its canonical path)."""
    return ROUTE_PATH_SHAPES.get((route_path, param)) or PATH_SHAPES.get(param)


def _whole(value: str) -> int | None:
    """The whole number `value` spells, or None; past 20 digits it is past 64 bits, and not converted
    (int() of 5,000 digits is slow, and refused by Python beyond 4,300)."""
    if WHOLE.fullmatch(value) is None or len(value.lstrip("+-").lstrip("0")) > 20:
        return None
    return int(value)


def _int64(value: str) -> bool | None:
    """None: not a whole number; else whether it fits in 64 bits."""
    if WHOLE.fullmatch(value) is None:
        return None
    number = _whole(value)
    return number is not None and -INT64_MAX - 1 <= number <= INT64_MAX


def _text_refusal(where: str, problem: str) -> ApiError:
    return ApiError(422, "invalid_text", f"{where}: {problem}")


def check_path(route_path: str, params: dict[str, str]) -> None:
    for name, value in params.items():
        problem = text_problem(value)
        if problem is not None:
            raise _text_refusal(f"path parameter {name}", problem)
        shape = shape_of(route_path, name) or Shape("a path segment")
        if _int64(value) is False or not shape.fits(value):
            raise ApiError(404, "not_found", f"no {name} {value[:120]!r}: it is not {shape.what}")


def check_query(query: Any) -> None:
    for name, value in query.items():
        for part, text in (("name", name), ("value", value)):
            problem = text_problem(text)
            if problem is not None:
                raise ApiError(422, "invalid_query", f"query parameter {name[:40]!r}: its {part}: {problem}")
        if _int64(value) is False:
            raise ApiError(422, "invalid_query", f"{name}: a whole number must fit in 64 bits")
        shape = QUERY_SHAPES.get(name)
        if shape is not None and value != "" and not shape.fits(value):
            raise ApiError(422, "invalid_query", f"{name}: {value[:120]!r} is not {shape.what}")


def body_problems(doc: Any, limit: int = 20) -> list[dict[str, str]]:
    """Every string and whole number of a JSON document against the rules, as {field, problem}
    (pydantic's refusals have the same form). Iterative (the depth is json's to bound); only
    containers are stacked, and a field's path is spelled only for a problem."""
    problems: list[dict[str, str]] = []

    def check(at: tuple[Any, ...], step: Any, key: Any, value: Any) -> None:
        """A scalar `value` at `at` + `step`, named by `key` (a list's items by the list's key)."""
        problem = None
        if isinstance(value, str):
            kind = (TextKind.NAME if key in NAME_KEYS else TextKind.FREE_TEXT if key in FREE_TEXT_KEYS
                    else TextKind.ONE_LINE)
            problem = text_problem(value, kind)
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            problem = "a whole number must fit in 64 bits"
        if problem is not None:
            problems.append({"field": _field(at if step is None else at + (step,)) or "body", "problem": problem})

    stack: list[tuple[tuple[Any, ...], Any, Any]] = [((), None, doc)]  # (path, the key naming it, container)
    while stack and len(problems) < limit:
        at, key, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                key_problem = text_problem(k)
                if key_problem is not None:
                    problems.append({"field": _field(at + (k,)), "problem": f"the key: {key_problem}"})
                if isinstance(v, (dict, list)):
                    stack.append((at + (k,), k, v))
                else:
                    check(at, k, k, v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, (dict, list)):
                    stack.append((at + (i,), key, v))
                else:
                    check(at, i, key, v)
        else:
            check(at, None, key, value)
    return problems[:limit]


def _field(at: tuple[Any, ...]) -> str:
    return ".".join(str(p)[:40] for p in at)


def _parse_and_check(raw: bytes) -> tuple[Any, list[dict[str, str]]] | None:
    with collector_paused():  # a large body is objects in bulk
        try:
            doc = parse_json(raw)
        except ValueError:
            return None  # not JSON: the handler answers 400 invalid_json in its own words
        return doc, body_problems(doc)


@web.middleware
async def input_guard_middleware(request: web.Request,
                                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    info = request.match_info
    if info.http_exception is not None:
        return await handler(request)  # 404 / 405: the router answers, nothing is looked up
    resource = info.route.resource
    check_path(resource.canonical if resource is not None else "", dict(info))
    check_query(request.query)
    if request.method in ("POST", "PUT", "PATCH") and request.can_read_body and \
            (request.content_length or 0) <= MAX_BODY_BYTES:
        raw = await request.read()  # kept by aiohttp: the handler reads the same bytes
        if raw:
            checked = (await run_read(request.app, _parse_and_check, raw) if len(raw) > OFF_LOOP_BYTES
                       else _parse_and_check(raw))
            if checked is not None:
                doc, problems = checked
                if problems:
                    raise ApiError(422, "invalid_body", problems)
                request[JSON_BODY] = doc
    return await handler(request)
