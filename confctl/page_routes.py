"""The HTML pages: who may see each, and where a browser that is not signed in goes."""
from __future__ import annotations

import html
from string import Template
from pathlib import Path
from urllib.parse import quote

import swagger_ui
from aiohttp import web

from confctl.auth import page_user

PAGES = Path(__file__).parent / "pages"
OPERATOR_ROLES = ("operator", "admin")
BOOKING_ROLES = ("organizer", "admin")
PEOPLE = ("organizer", "admin", "operator", "technician")  # see sessions; the API decides what each may change


async def _signed_in_page(request: web.Request, file: str, roles: tuple[str, ...], needs: str) -> web.StreamResponse:
    user = await page_user(request)
    if user is None:
        raise web.HTTPFound(f"/signin?next={quote(request.path_qs, safe='')}")
    if user.role.value not in roles:
        body = Template((PAGES / "forbidden.html").read_text()).substitute(
            needs=html.escape(needs), name=html.escape(user.name), role=html.escape(user.role.value))
        return web.Response(status=403, text=body, content_type="text/html")
    return web.FileResponse(PAGES / file, headers={"Cache-Control": "no-store"})


async def operator_page(request: web.Request) -> web.StreamResponse:
    return await _signed_in_page(request, "operator.html", OPERATOR_ROLES, "operators")


async def book_page(request: web.Request) -> web.StreamResponse:
    return await _signed_in_page(request, "book.html", BOOKING_ROLES, "organizers")


async def calendar_page(request: web.Request) -> web.StreamResponse:
    return await _signed_in_page(request, "sessions.html", PEOPLE, "people of this network")


async def session_page(request: web.Request) -> web.StreamResponse:
    return await _signed_in_page(request, "session.html", PEOPLE, "people of this network")


async def duty_page(request: web.Request) -> web.StreamResponse:
    # The duty officer is an organizer (or admin) with the emergency permission; the page says so to others.
    return await _signed_in_page(request, "duty.html", BOOKING_ROLES, "the duty officer")


async def signin_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGES / "signin.html")


async def join_page(request: web.Request) -> web.FileResponse:
    # A technician's page needs no sign-in: the site's join token in its link is the credential.
    return web.FileResponse(PAGES / "join.html")


async def api_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGES / "api.html")


async def admin_page(request: web.Request) -> web.StreamResponse:
    return await _signed_in_page(request, "admin.html", ("admin",), "administrators")


def home_for(role: str, site: str | None, permissions: frozenset[str]) -> str:
    """Where each role starts: its own work, never a page that refuses it (a technician was sent to /book)."""
    if role == "technician":  # their site's sessions, today's with join buttons
        return f"/sessions?site={quote(site or '', safe='')}"
    if role == "admin":
        return "/admin"  # a page linking all the others
    if role == "operator":
        return "/operator"
    if role == "organizer" and "emergency" in permissions:
        return "/duty"  # the duty officer
    if role == "organizer":
        return "/sessions"  # the calendar; booking is one link away
    return "/api"  # a node's credential: no page of its own


async def home_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    if user is None:
        raise web.HTTPFound("/signin?next=%2F")
    raise web.HTTPFound(home_for(user.role.value, user.site, user.permissions))


async def favicon(request: web.Request) -> web.FileResponse:
    # Every browser asks for it on every page; without it each page logged a 404.
    return web.FileResponse(PAGES / "favicon.ico", headers={"Cache-Control": "public, max-age=86400",
                                                            "Content-Type": "image/x-icon"})


async def to_operator(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/operator")


def add_pages(app: web.Application) -> None:
    app.router.add_get("/", home_page)
    app.router.add_get("/book", book_page)
    app.router.add_get("/join", join_page)
    app.router.add_get("/signin", signin_page)
    app.router.add_get("/operator", operator_page)
    app.router.add_get("/duty", duty_page)
    app.router.add_get("/admin", admin_page)
    app.router.add_get("/sessions", calendar_page)
    app.router.add_get("/sessions/{id}", session_page)
    app.router.add_get("/api", api_page)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/api/viewer", Path(swagger_ui.__file__).parent / "static")  # Swagger UI's packaged files
    for alias in ("/dashboard", "/live"):
        app.router.add_get(alias, to_operator)
