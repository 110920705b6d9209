"""Checking /ws messages against the published JSON Schema (media/contracts/browser.py), with `jsonschema`:
the document a browser or any other client would read, not the pydantic models that produced it."""
from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from media.contracts import browser


def validators(schema: dict[str, Any]) -> dict[str, Draft202012Validator]:
    """One validator per direction of `schema` (as served at /api/ws-schema.json): "ToServer" and "ToSite"."""
    Draft202012Validator.check_schema(schema)
    return {d: Draft202012Validator({"$ref": f"#/$defs/{d}", "$defs": schema["$defs"]}) for d in ("ToServer", "ToSite")}


CHECK = validators(browser.json_schema())


def described(direction: str, msg: Any) -> list[str]:
    """What the schema finds wrong with `msg` going `direction` (empty: described)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(message)'}: {e.message}" for e in CHECK[direction].iter_errors(msg)]


def record_frames(page: Any, frames: list[tuple[str, Any]]) -> None:
    """Every WebSocket frame `page` sends ("ToServer") and receives ("ToSite"), as it crossed the wire."""
    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda payload: frames.append(("ToServer", payload)))
        ws.on("framereceived", lambda payload: frames.append(("ToSite", payload)))
    page.on("websocket", on_socket)


def undescribed(check: dict[str, Draft202012Validator], frames: list[tuple[str, Any]]) -> list[tuple[str, Any, list[str]]]:
    """The frames that are not JSON or that the schema does not describe, with why."""
    wrong = []
    for direction, payload in frames:
        try:
            msg = json.loads(payload)
        except (TypeError, ValueError) as exc:
            wrong.append((direction, payload, [f"not a JSON text frame: {exc}"]))
            continue
        errors = [e.message for e in check[direction].iter_errors(msg)]
        if errors:
            wrong.append((direction, payload, errors))
    return wrong
