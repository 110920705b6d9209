"""A route with who may call it and what the OpenAPI document needs to know about it.

`roles` is the role table: the auth middleware enforces it from this list, so a
handler never repeats it (it only narrows further: own sessions, own site).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC: tuple[str, ...] = ("public",)  # no token needed
PEOPLE: tuple[str, ...] = ("organizer", "technician", "operator", "admin")  # any person; not a node's token
READERS: tuple[str, ...] = ("operator", "admin")  # operators read everything
WRITERS: tuple[str, ...] = ("organizer", "admin")  # book, change and cancel (organizers: their own)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: tuple[str, ...] = PEOPLE
    body: Any = None  # a pydantic model class, or a JSON schema dict
    responses: dict[int, str] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    content_type: str = "application/json"

    @property
    def public(self) -> bool:
        return self.roles == PUBLIC
