"""Where browsers reach the control plane, and what a secure origin promises them.

Behind a reverse proxy that terminates TLS (deploy/nginx/), the request arrives as plain HTTP from
127.0.0.1: `confctl serve --public-url https://confctl.example` says what browsers see instead, so
join links, the Secure cookie and the Origin check follow it. It comes from the operator, never from
a request header (X-Forwarded-* would let any client choose the host its join links name).
Every response over a secure origin carries Strict-Transport-Security: once a browser has seen the
https:// pages it never falls back to plain HTTP, where it would have no camera.
"""
from __future__ import annotations

from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

HSTS = "max-age=31536000"  # a year, as browsers' preload lists expect; no includeSubDomains: we own one host


class PublicUrlError(ValueError):
    pass


def parse_public_url(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) of --public-url, or PublicUrlError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "@" in parts.netloc:
        raise PublicUrlError(f"--public-url {url!r}: give scheme and host only, e.g. https://confctl.example "
                             "or https://10.1.2.3:8443")
    return parts.scheme, parts.netloc


def public_origin_middleware(public_url: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    public = parse_public_url(public_url) if public_url else None

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        if public is not None:
            request = request.clone(scheme=public[0], host=public[1])
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects raised by pages
            if request.secure:
                exc.headers.setdefault("Strict-Transport-Security", HSTS)
            raise
        if request.secure and not response.prepared:  # a WebSocket has sent its headers already
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
    return middleware
