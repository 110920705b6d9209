"""Errors carry their HTTP status; one middleware turns every one into JSON."""
from __future__ import annotations

import json
import math
import sqlite3
import logging
from typing import Any, Awaitable, Callable, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, OperationalError

from rooms.admission import RequestError
from rooms.booking_form import FormError, validation_detail
from rooms.store.bookings import DialInExhausted, NoTopology, NotFound, SessionCancelled
from rooms.store.users import UserError

log = logging.getLogger("confctl.api")
# The request's JSON body, parsed once by confctl.input_guard (which checked every string and number in it).
JSON_BODY = web.RequestKey("json_body", object)


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: Any = None, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(code)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra
        self.headers = headers or {}


def error_body(code: str, detail: Any = None, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def _json_error(status: int, code: str, detail: Any = None, headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.json_response(error_body(code, detail, **extra), status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return _json_error(e.status, e.code, e.detail, e.headers, **e.extra)
    except FormError as e:
        return _json_error(422, e.code, e.problems)
    except RequestError as e:
        return _json_error(422, e.code, e.detail)
    except UserError as e:
        return _json_error(422, "invalid_user", str(e))
    except NotFound as e:
        return _json_error(404, "not_found", str(e))
    except SessionCancelled as e:
        return _json_error(409, "session_cancelled", str(e))
    except ValidationError as e:
        # A model built inside a handler from what the client sent (an emergency's booking from its title):
        # the client's input, refused in the same words as a body's.
        log.warning("validation failed inside %s %r: %r", request.method, request.path, e.errors()[:1])
        return _json_error(422, "invalid_body", validation_detail(e))
    except DataError as e:
        # The database refused a value as data (NUL in text, a number out of its column's range): the edge
        # check (confctl.input_guard) should have refused it first; still the client's input, not a crash.
        log.warning("database refused a value on %s %r: %r", request.method, request.path,
                    str(getattr(e, "orig", e)).splitlines()[0][:200])
        return _json_error(422, "invalid_value", "a value in the request cannot be stored or looked up")
    except NoTopology as e:
        return _json_error(503, "no_topology", str(e))
    except DialInExhausted as e:
        return _json_error(503, "no_dial_in_number", str(e))
    except (OperationalError, sqlite3.OperationalError) as e:
        # A lock not had within the engine's lock wait, or the database out of reach: the
        # client should come back, not take it for a bug. (SQLite's BEGIN goes straight to
        # the driver, so its error arrives unwrapped.)
        orig = getattr(e, "orig", e)
        text = str(orig).lower()
        busy = "locked" in text or "lock timeout" in text or "lock_timeout" in text
        # %r: a path or a driver's message may carry a line feed, which would forge a log line
        log.warning("database %s on %s %r: %r", "busy" if busy else "unavailable", request.method, request.path,
                    str(orig).splitlines()[0] if str(orig) else type(orig).__name__)
        return _json_error(503, "database_busy" if busy else "database_unavailable",
                           "the database is busy with a long write; retry shortly" if busy
                           else "the database cannot be reached; retry shortly",
                           {"Retry-After": "2" if busy else "5"})
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            kept = {k: v for k, v in e.headers.items() if k.lower() not in ("content-type", "content-length")}
            return _json_error(e.status, e.reason.lower().replace(" ", "_"),
                               e.text if e.text != f"{e.status}: {e.reason}" else None, kept)  # Allow stays
        raise
    except Exception:
        log.exception("unhandled error on %s %r", request.method, request.path)
        return _json_error(500, "internal_error", "the server failed; the error is logged")


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > 1_000_000:
        raise ApiError(413, "body_too_large", "request bodies are limited to 1 MB")
    if JSON_BODY in request:
        return request[JSON_BODY]  # parsed and checked at the edge
    raw = await request.read()
    try:
        return parse_json(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None


M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as `model`, or a 4xx naming what is wrong."""
    raw = await read_json(request)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None


def parse_json(raw: bytes | str) -> Any:
    """JSON from an untrusted peer: a ValueError with a reason for anything that is not plain JSON."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    except RecursionError:
        # json's C scanner recurses per level: thousands of [[[[ exhaust the stack
        raise ValueError("the body nests too deeply to be a document of this API") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: a number JSON allows, infinite as a float
        raise ValueError(f"{text[:40]} is beyond any finite number")
    return value
