"""Shared fixtures: real SQLite files and real PostgreSQL schemas, one per test.

PostgreSQL: 127.0.0.1:5432, database `test` (override with CONFCTL_TEST_PG).
Unreachable locally -> those tests skip; with CI=true they fail instead.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.store.users import Role, UserStore
from rooms.topology import Topology, demo_topology, parse_topology

PG_BASE = os.environ.get("CONFCTL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    try:
        eng = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # any failure to connect means "not here"
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session", autouse=True)
def no_real_user_database(tmp_path_factory) -> Iterator[None]:
    """No test, nor any process it starts, reads or writes the user's own database: the CLI's and `make run`'s
    default lives in $XDG_DATA_HOME (else ~/.local/share), and $CONFCTL_DB would override every default."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    patch.delenv("CONFCTL_DB", raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def pg_reason() -> str | None:
    return _pg_available()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path, pg_reason) -> Iterator[str]:
    """A fresh, migrated database URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/confctl.db"
        eng = make_engine(url)
        upgrade(eng)
        eng.dispose()
        yield url
        return
    require_postgres(pg_reason)
    with empty_pg_schema() as url:
        eng = make_engine(url)
        upgrade(eng)
        eng.dispose()
        yield url


def require_postgres(pg_reason: str | None) -> None:
    """Skip a PostgreSQL test where none is reachable; fail it under CI=true, where it must run."""
    if pg_reason is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL must run in CI: {pg_reason}")
        pytest.skip(f"PostgreSQL not reachable: {pg_reason}")


@contextmanager
def empty_pg_schema(prefix: str = "t_") -> Iterator[str]:
    """A URL to a new, empty schema of the test PostgreSQL (no migrations run), dropped afterwards."""
    schema = prefix + secrets.token_hex(6)
    admin = create_engine(PG_BASE)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def add_users(url: str, people: list[tuple[str, Role, str | None]]) -> dict[str, str]:
    """Users of the demo network, written straight to the database; their bearer tokens by name."""
    engine = make_engine(url)
    try:
        users, known = UserStore(engine), set(demo_topology().sites)
        return {name: users.add(name, role, site, known)[1] for name, role, site in people}
    finally:
        engine.dispose()


@pytest.fixture
def topo() -> Topology:
    return demo_topology()


@pytest.fixture
def store(db_url, topo) -> Iterator[BookingStore]:
    eng = make_engine(db_url)
    s = BookingStore(eng)
    s.set_topology(topo)
    yield s
    eng.dispose()


@pytest.fixture
def users(store) -> UserStore:
    return UserStore(store.engine)


def tomorrow_at(hour: int, minute: int = 0) -> datetime:
    """A fixed wall-clock time tomorrow in the province's offset (+08:00)."""
    tz = timezone(timedelta(hours=8))
    d = (datetime.now(tz) + timedelta(days=1)).date()
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz)


def small_topology(rooms: int = 60, county_mbps: float = 10) -> Topology:
    """Province -> prefecture -> county with many rooms, so only links bind."""
    many = [{"id": f"r{i}"} for i in range(rooms)]
    return parse_topology({
        "network": "small",
        "sites": [
            {"id": "p", "level": "province", "rooms": many},
            {"id": "f", "level": "prefecture", "parent": "p", "uplink_mbps": 155, "rooms": many},
            {"id": "c", "level": "county", "parent": "f", "uplink_mbps": county_mbps, "rooms": many},
        ],
    })


@pytest.fixture
async def api(aiohttp_client, db_url):
    """The app over HTTP on the demo network, with one user per role; `api.h(name)` are their headers.
    A node's credential registers the node id it is named after: `node-cc` registers node-cc, `nora` none."""
    from confctl.app import make_app
    from confctl.config import Settings
    from rooms.topology import demo_topology_path
    app = make_app(Settings(topology_file=demo_topology_path(), db_url=db_url))
    client = await aiohttp_client(app)
    tokens = add_users(db_url, [("olga", Role.ORGANIZER, None), ("oscar", Role.ORGANIZER, None),
                                ("tina", Role.TECHNICIAN, "cc-nongan"), ("opal", Role.OPERATOR, None),
                                ("ada", Role.ADMIN, None), ("nora", Role.NODE, None), ("node-cc", Role.NODE, None)])
    client.tokens = tokens
    client.h = lambda who: {"Authorization": f"Bearer {tokens[who]}"}
    yield client


def booking(sites, hour=10, hours=1, profile="hd720", **kw):
    """A booking body for tomorrow at `hour` (+08:00); sites[0] hosts."""
    t = tomorrow_at(hour)
    return {"title": kw.pop("title", "Flood briefing"), "host_site": sites[0], "sites": sites[1:],
            "start": t.isoformat(), "end": (t + timedelta(hours=hours)).isoformat(), "profile": profile, **kw}


# -- markers and time budgets by folder -----------------------------------------------------------
# `pytest -m media`, `-m sip`, `-m "not browser"`... select by what a test drives. Budgets: pyproject's
# `timeout` (300 s) is the generous default; a folder's own is tighter, several times its slowest
# test on a loaded 2-core CI machine, so a hang fails in minutes with its stack, not at CI's 90.
FOLDER_MARKS = {"media": 240, "sip": 120, "harness": 240, "deploy": 240}
BROWSER_BUDGET_S = 240


def pytest_collection_modifyitems(config, items) -> None:
    import tests.browser
    root = os.path.dirname(__file__)
    for item in items:
        rel = os.path.relpath(str(item.fspath), root).split(os.sep)
        budget = None
        if len(rel) > 1 and rel[0] in FOLDER_MARKS:
            item.add_marker(getattr(pytest.mark, rel[0]))
            budget = FOLDER_MARKS[rel[0]]
        module = getattr(item, "module", None)
        if module is not None and (getattr(module, "launch", None) is tests.browser.launch
                                   or "async_playwright" in vars(module)):
            item.add_marker(pytest.mark.browser)
            budget = max(budget or 0, BROWSER_BUDGET_S)
        if budget is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(budget))
