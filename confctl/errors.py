"""Errors carry their HTTP status; one middleware turns every one into JSON."""
from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from rooms.admission import RequestError
from rooms.booking_form import FormError
from rooms.store.bookings import DialInExhausted, NoTopology, NotFound, SessionCancelled
from rooms.store.users import UserError

log = logging.getLogger("confctl.api")


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
    except NoTopology as e:
        return _json_error(503, "no_topology", str(e))
    except DialInExhausted as e:
        return _json_error(503, "no_dial_in_number", str(e))
    except web.HTTPException as e:
        if e.status >= 400 and e.content_type != "application/json":
            return _json_error(e.status, e.reason.lower().replace(" ", "_"), e.text if e.text != f"{e.status}: {e.reason}" else None)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(500, "internal_error", "the server failed; the error is logged")


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > 1_000_000:
        raise ApiError(413, "body_too_large", "request bodies are limited to 1 MB")
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
