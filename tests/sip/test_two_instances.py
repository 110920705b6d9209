"""SIP with two control planes on one PostgreSQL: a phone registered through one instance is dialled out from
the other (registrations are rows both read), and answers the instance that called it."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from confctl.app import make_app
from confctl.config import Settings
from confctl.keys import SIP_ENDPOINT, SIP_GUESS_BUS
from rooms.store.engine import make_engine
from rooms.store.sip import SipStore
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.peers import until
from tests.sip.phone import Callee
from tests.sip.test_guessing import PASSWORD, TOO_MANY, USER, Guesser
from tests.sip.test_sipp import bound_sip_port


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_phone_registered_through_one_instance_is_dialled_out_from_the_other(aiohttp_client, db_url, tmp_path):
    clients = {name: await aiohttp_client(make_app(Settings(
        topology_file=demo_topology_path(), db_url=db_url, sip_port=0, recordings_dir=tmp_path / name,
        instance_id=f"cp-{name}"))) for name in ("a", "b")}
    ports = {name: bound_sip_port(c.server.app) for name, c in clients.items()}
    engine = make_engine(db_url)
    SipStore(engine).add_account("desk-sp", "sp", "phone-pass-1", "confctl")
    engine.dispose()
    h = {"Authorization": f"Bearer {add_users(db_url, [('olga', Role.ORGANIZER, None)])['olga']}"}
    now = datetime.now(timezone(timedelta(hours=8)))
    r = await clients["a"].post("/api/sessions", headers=h, json={
        "title": "Across instances", "host_site": "jl", "sites": ["sp"], "start": now.isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(), "profile": "sd"})
    assert r.status == 201
    session = await r.json()
    phone = await Callee("desk-sp", "phone-pass-1", ports["a"]).open()
    try:
        assert (await phone.register()).status == 200  # through instance a
        phone.server = ports["b"]  # a phone answers whoever calls it: here instance b
        answering = asyncio.create_task(phone.answer_incoming())
        r = await clients["b"].post(f"/api/sessions/{session['id']}/dial-out", headers=h, json={"account": "desk-sp"})
        assert r.status == 202, await r.text()
        await asyncio.wait_for(answering, 15)
        assert f":{ports['b']}" in phone.incoming.header("Via")  # the INVITE came from instance b
        assert (await phone.hang_up_incoming()).status == 200
    finally:
        phone.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("cut", [False, True], ids=["connected", "after-its-connections-were-cut"])
async def test_a_guesser_gets_no_fresh_budget_on_the_other_instance(aiohttp_client, db_url, tmp_path, cut):
    """Ten wrong passwords through instance a: instance b then refuses that address unchecked, even its right
    password (the throttle's replicas agree through PostgreSQL), while a clean address registers through b.
    Also after the database killed every connection of the sharing (a restart, a failover): it reconnects."""
    clients = {name: await aiohttp_client(make_app(Settings(
        topology_file=demo_topology_path(), db_url=db_url, sip_port=0, recordings_dir=tmp_path / name,
        instance_id=f"cp-{name}"))) for name in ("a", "b")}
    ports = {name: bound_sip_port(c.server.app) for name, c in clients.items()}
    engine = make_engine(db_url)
    SipStore(engine).add_account(USER, "sp", PASSWORD, "confctl")
    engine.dispose()
    buses = {name: c.server.app[SIP_GUESS_BUS] for name, c in clients.items()}
    for bus in buses.values():
        await asyncio.wait_for(bus.listening.wait(), 15)
    if cut:
        before = {name: bus.backends for name, bus in buses.items()}
        engine = make_engine(db_url)
        with engine.connect() as conn:
            for pids in before.values():
                for pid in pids:
                    conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        engine.dispose()
        await until(lambda: all(b.listening.is_set() and b.backends != before[n] for n, b in buses.items()),
                    timeout=30, what="both instances listening again on new connections")
    guesser = await Guesser.open("127.0.0.4", ports["a"])
    try:
        for n in range(10):
            r = await guesser.guess(f"guess-{n}")
            assert (r.status, r.reason) == (403, "Forbidden")  # checked by a: wrong
    finally:
        guesser.close()
    await until(lambda: buses["b"].stats["guesses_received"] >= 10, what="b heard a's ten failures")
    again = await Guesser.open("127.0.0.4", ports["b"])
    try:
        r = await again.guess(PASSWORD)
        assert r.status == 403 and TOO_MANY in r.reason  # refused unchecked by b
    finally:
        again.close()
    phone = await Guesser.open("127.0.0.1", ports["b"])
    try:
        assert (await phone.guess(PASSWORD)).status == 200
    finally:
        phone.close()
    stats_b = clients["b"].server.app[SIP_ENDPOINT].stats
    assert stats_b["auth_failed"] == 0 and stats_b["auth_throttled"] == 1
