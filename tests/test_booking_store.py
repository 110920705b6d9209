"""The booking store on real SQLite and PostgreSQL: atomic admission under races, edits, cancels."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from rooms.admission import Accepted, Refused
from rooms.booking_form import BookingBody, to_request
from rooms.store.bookings import BookingStore, NotFound, SessionCancelled
from rooms.store.engine import make_engine
from tests.conftest import small_topology, tomorrow_at


def body(sites, start, hours=1, profile="hd720", **kw):
    return BookingBody(title=kw.pop("title", "t"), host_site=sites[0], sites=sites[1:], start=start.isoformat(),
                       end=(start + timedelta(hours=hours)).isoformat(), profile=profile, **kw)


def book(store, b):
    req, meta = to_request(b, datetime.now(timezone.utc))
    return store.book(req, meta, "usr_test")


def race(urls_and_stores, bodies):
    """Fire every booking at once from its own thread (its own connection)."""
    barrier = threading.Barrier(len(bodies))

    def one(i):
        barrier.wait()
        return book(urls_and_stores[i % len(urls_and_stores)], bodies[i])

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, range(len(bodies))))


def assert_no_link_over_limit(store, start, end):
    topo = store.topology()
    peaks = store.all_link_peaks(int(start.timestamp()), int(end.timestamp()))
    assert peaks, "the race booked nothing"
    for (link, _direction), peak in peaks.items():
        assert peak <= topo.links[link].limit_kbps, (link, peak)


def test_twenty_concurrent_hd720_for_one_county_exactly_one_wins(store, db_url):
    # Two control-plane instances (two engines) share the database, as in production.
    second = BookingStore(make_engine(db_url))
    t = tomorrow_at(10)
    # Each request: the county plus two sites no other request uses, so only the county's
    # link can decide (its two rooms would take two sessions; its link takes one HD720).
    topo = store.topology()
    others = [s for s in topo.sites if s in topo.links and topo.links[s].rate_kbps >= 10_000 and s != "cc-nongan"][:40]
    bodies = [body(["cc-nongan", others[2 * i], others[2 * i + 1]], t) for i in range(20)]
    results = race([store, second], bodies)
    won = [r for r in results if isinstance(r.decision, Accepted)]
    assert len(won) == 1
    lost = [r for r in results if isinstance(r.decision, Refused)]
    assert all(any(v.link == "cc-nongan" for v in r.decision.violations) for r in lost), [
        r.decision.violations for r in lost if not any(v.link == "cc-nongan" for v in r.decision.violations)]
    assert_no_link_over_limit(store, t, t + timedelta(hours=1))
    second.engine.dispose()


def test_fifty_concurrent_requests_where_exactly_n_fit(db_url):
    # Many rooms, one 10 Mbit/s county link: SD sessions {p, c} put 1 video + 1 audio = 920 kbit/s
    # down the county link, so floor(7500 / 920) = 8 fit, whatever the order.
    stores = [BookingStore(make_engine(db_url)) for _ in range(2)]
    stores[0].set_topology(small_topology())
    t = tomorrow_at(14)
    results = race(stores, [body(["c", "p"], t, profile="sd") for _ in range(50)])
    assert sum(isinstance(r.decision, Accepted) for r in results) == 7500 // 920 == 8
    assert_no_link_over_limit(stores[0], t, t + timedelta(hours=1))
    for s in stores:
        s.engine.dispose()


def test_recurrence_admits_every_occurrence_and_names_the_failing_ones(store):
    t = tomorrow_at(9)
    blocker = book(store, body(["jl", "cc-nongan", "jlc"], t + timedelta(days=14)))
    assert isinstance(blocker.decision, Accepted)
    out = book(store, body(["cc", "cc-nongan", "sp"], t, recurrence="FREQ=WEEKLY;COUNT=4"))
    assert isinstance(out.decision, Refused)
    assert {v.occurrence_start for v in out.decision.violations} == {int((t + timedelta(days=14)).timestamp())}
    ok = book(store, body(["cc", "cc-nongan", "sp"], t, recurrence="FREQ=WEEKLY;COUNT=2"))
    assert isinstance(ok.decision, Accepted) and len(ok.session["occurrences"]) == 2


def test_edit_readmits_and_cancel_frees_capacity(store):
    t = tomorrow_at(11)
    a = book(store, body(["jl", "cc-nongan", "jlc"], t))
    assert isinstance(a.decision, Accepted)
    sid = a.session["id"]
    # Editing a session never counts its own old reservation against it.
    req, meta = to_request(body(["jl", "cc-nongan", "jlc"], t, hours=2), datetime.now(timezone.utc))
    edited = store.update(sid, req, meta)
    assert isinstance(edited.decision, Accepted) and edited.session["id"] == sid
    assert not isinstance(book(store, body(["cc", "cc-nongan", "sp"], t + timedelta(hours=1))).decision, Accepted)
    store.cancel(sid)
    assert store.get(sid)["status"] == "cancelled"
    assert isinstance(book(store, body(["cc", "cc-nongan", "sp"], t + timedelta(hours=1))).decision, Accepted)
    with pytest.raises(SessionCancelled):
        store.cancel(sid)
    with pytest.raises(NotFound):
        store.get("ses_missing")


def test_refused_edit_keeps_the_original_booking(store):
    t = tomorrow_at(15)
    a = book(store, body(["jl", "cc-nongan", "jlc"], t, profile="sd"))
    sid = a.session["id"]
    req, meta = to_request(body(["jl", "cc-nongan", "jlc"], t, profile="hd1080"), datetime.now(timezone.utc))
    assert isinstance(store.update(sid, req, meta).decision, Refused)
    assert store.get(sid)["profile"] == "sd"
    peaks = store.all_link_peaks(int(t.timestamp()), int((t + timedelta(hours=1)).timestamp()))
    assert peaks[("cc-nongan", "down")] == 1760


def test_sessions_list_filters_by_window_and_site(store):
    t = tomorrow_at(8)
    a = book(store, body(["jl", "cc-nongan"], t, profile="audio"))
    book(store, body(["jl/emergency", "sp"], t + timedelta(hours=3), profile="audio"))
    s, e = t.timestamp(), (t + timedelta(hours=1)).timestamp()
    assert [x["id"] for x in store.list(int(s), int(e))] == [a.session["id"]]
    assert [x["id"] for x in store.list(site="cc-nongan")] == [a.session["id"]]
    assert len(store.list(site="jl")) == 2


def test_topology_change_refused_while_future_bookings_would_break(store, topo):
    t = tomorrow_at(13)
    kept = book(store, body(["jl", "cc-nongan", "jlc"], t))
    doc = dict(topo.to_dict())
    doc["sites"] = [dict(s, uplink_mbps=2) if s["id"] == "cc-nongan" else s for s in doc["sites"]]
    from rooms.topology import parse_topology
    change = store.set_topology(parse_topology(doc))
    assert not change.applied and [b["session"] for b in change.broken] == [kept.session["id"]]
    assert store.topology().links["cc-nongan"].rate_kbps == 10_000
    doc["sites"] = [dict(s, uplink_mbps=20) if s["id"] == "cc-nongan" else s for s in doc["sites"]]
    assert store.set_topology(parse_topology(doc)).applied
    assert store.topology().links["cc-nongan"].rate_kbps == 20_000


def test_an_edit_by_another_instance_is_seen_by_admission_here(store, db_url):
    # Each instance memoises what sessions hold; the revision stored with every
    # occurrence must make an edit made elsewhere count at once.
    other = BookingStore(make_engine(db_url))
    t = tomorrow_at(16)
    a = book(store, body(["jl", "cc-nongan", "jlc"], t, profile="audio"))
    assert isinstance(a.decision, Accepted)
    req, meta = to_request(body(["jl", "cc-nongan", "jlc"], t, profile="hd720"), datetime.now(timezone.utc))
    assert isinstance(other.update(a.session["id"], req, meta).decision, Accepted)
    # The county link now carries an HD720 session: a second one is refused here, not by luck.
    second = book(store, body(["cc", "cc-nongan", "sp"], t))
    assert isinstance(second.decision, Refused)
    assert any(v.kind == "link" and v.link == "cc-nongan" for v in second.decision.violations)
    other.cancel(a.session["id"])
    assert isinstance(book(store, body(["cc", "cc-nongan", "sp"], t)).decision, Accepted)
    other.engine.dispose()


def test_migrating_down_and_up_keeps_every_reservation(db_url, topo):
    from rooms.store.migrate import downgrade, upgrade
    from sqlalchemy import text
    eng = make_engine(db_url)
    s = BookingStore(eng)
    s.set_topology(topo)
    t = tomorrow_at(7)
    a = book(s, body(["jl", "cc-nongan", "jlc"], t, recurrence="FREQ=DAILY;COUNT=3"))
    cancelled = book(s, body(["cc", "sp"], t, profile="sd"))
    s.cancel(cancelled.session["id"])
    before = s.link_load("cc-nongan", int(t.timestamp()), int((t + timedelta(days=3)).timestamp()))
    downgrade(eng, "0005_calls")
    with eng.connect() as c:
        # the old per-link rows, rebuilt from the stored plans: 3 occurrences x 2 directions
        rows = c.execute(text("SELECT direction, kbps FROM link_reservation WHERE link_id = 'cc-nongan'")).all()
        assert sorted(rows) == sorted([("down", before["down"]["peak_kbps"]), ("up", before["up"]["peak_kbps"])] * 3)
        assert c.execute(text("SELECT count(*) FROM room_reservation")).scalar() == 3 * 3
    upgrade(eng)
    again = BookingStore(eng)  # a fresh instance: nothing memoised
    after = again.link_load("cc-nongan", int(t.timestamp()), int((t + timedelta(days=3)).timestamp()))
    assert after == before and after["down"]["sessions"] == [a.session["id"]]
    clash = book(again, body(["jl", "cc-nongan", "jlc"], t + timedelta(days=2)))
    assert isinstance(clash.decision, Refused)
    assert any(v.kind == "link" and v.link == "cc-nongan" for v in clash.decision.violations)
    eng.dispose()


def test_a_taken_dial_in_number_is_drawn_again(store, monkeypatch):
    import secrets as secrets_module
    t = tomorrow_at(6)
    first = book(store, body(["jl", "cc"], t, profile="audio"))
    taken = int(first.session["dial_in"]) - 100000
    draws = iter([taken, taken, 4242])  # the first two draws clash with the stored number
    monkeypatch.setattr(secrets_module, "randbelow", lambda _n: next(draws))
    second = book(store, body(["jl", "sp"], t + timedelta(hours=2), profile="audio"))
    assert isinstance(second.decision, Accepted)
    assert second.session["dial_in"] == "104242" != first.session["dial_in"]
    assert store.by_dial_in("104242")["id"] == second.session["id"]
