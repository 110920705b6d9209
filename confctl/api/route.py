"""A route with what the OpenAPI document needs to know about it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[str, ...] = ()  # empty: any authenticated user; ("public",): no token needed
    body: Any = None  # a pydantic model class, or a JSON schema dict
    responses: dict[int, str] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    content_type: str = "application/json"
