"""The OpenAPI 3.1 document, built from the same route list the app registers, and beside it the /ws
protocol's JSON Schema (OpenAPI describes no WebSocket messages), which the document links to."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from confctl.api.route import PUBLIC, Route
from media.contracts import browser

WS_SCHEMA = "/api/ws-schema.json"
WEBSOCKETS = {"/ws": {
    "summary": "A site's signalling: join, offer/answer, program, leave (the control plane's and every media node's)",
    "schema": WS_SCHEMA}}
ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "detail": {}}}


def _schema(body: Any, components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, type) and issubclass(body, BaseModel):
        schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = sub
        components[body.__name__] = schema
        return {"$ref": f"#/components/schemas/{body.__name__}"}
    return body


def _common_errors(r: Route, path: str) -> list[tuple[int, str]]:
    """What any route may answer besides its own responses, as the middlewares really do."""
    out = [(400, "malformed request (not JSON, a bad query parameter)")]
    if not r.public:
        out += [(401, "no or unknown token"), (403, f"role not allowed (allowed: {', '.join(r.roles)})")]
    if "{" in path:
        out.append((404, "no such resource"))
    out.append((405, "method not allowed; the Allow header lists those that are"))
    if r.body is not None:
        out.append((422, "the body does not fit the schema; detail lists each field"))
    out += [(431, "a header (Authorization) over 8 KiB"),
            (503, "the database is busy (retry after Retry-After seconds) or has no topology yet")]
    return out


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Error": ERROR}
    for r in routes:
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", r.path)
        op: dict[str, Any] = {"summary": r.summary, "operationId": f"{r.method.lower()}_{r.handler.__name__}"}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"\{(\w+)", path)]
        params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in r.query]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _schema(r.body, components)}}}
        if r.public:
            op["security"] = []
        else:
            op["description"] = f"roles: {', '.join(r.roles)}"
        responses: dict[str, Any] = {}
        for status, text in (r.responses or {200: "ok"}).items():
            ctype = r.content_type if status < 300 else "application/json"
            responses[str(status)] = {"description": text, "content": {ctype: {"schema": {} if status < 300 else {"$ref": "#/components/schemas/Error"}}}}
        for status, text in _common_errors(r, path):
            responses.setdefault(str(status), {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        op["responses"] = responses
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "confctl", "version": "0.1.0",
                 "description": "Booking with time-aware bandwidth admission for a provincial video-conferencing "
                                "network.\n\nSites signal over the WebSocket `/ws`, whose messages are described "
                                f"apart, as JSON Schema: [{WS_SCHEMA}]({WS_SCHEMA})."},
        "x-websockets": WEBSOCKETS,
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def openapi_route(all_routes: list[Route]) -> Route:
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(build_openapi(all_routes))
    return Route("GET", "/api/openapi.json", openapi, "This document", PUBLIC)


def ws_schema_route() -> Route:
    schema = browser.json_schema()  # built once: the models do not change while the process runs

    async def ws_schema(request: web.Request) -> web.Response:
        return web.json_response(schema)
    return Route("GET", WS_SCHEMA, ws_schema, "The /ws messages, both directions, as JSON Schema", PUBLIC)
