"""SIP state in the database (bindings, call records), on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import Engine

from rooms.admission import Accepted
from rooms.store.calls import CallRecords
from rooms.store.engine import BINDINGS_LOCK_KEY, BOOKING_LOCK_KEY, make_engine, write_transaction
from rooms.store.sip import MAX_CONTACTS, BindingUpdate, SipStore
from tests.conftest import tomorrow_at
from tests.test_booking_store import body, book


def test_an_account_keeps_its_newest_contacts_and_a_refresh_counts_as_new(db_url):
    store = SipStore(make_engine(db_url))
    try:
        store.add_account("desk-101", "cc-nongan", "s3cret-pass", "confctl")
        store.add_account("desk-102", "cc-nongan", "s3cret-pass", "confctl")
        now = 1_800_000_000
        for port in range(5000, 5000 + MAX_CONTACTS):  # a phone whose address keeps changing
            store.update_bindings("desk-101", [(f"sip:desk-101@10.0.0.1:{port}", 3600)], "c", 1, now)
        store.update_bindings("desk-102", [("sip:desk-102@10.0.0.2:5060", 3600)], "d", 1, now)
        # the oldest contact re-registers: now the newest; then two new ones arrive in one batch
        store.update_bindings_many([
            BindingUpdate("desk-101", [("sip:desk-101@10.0.0.1:5000", 3600)], "c", 2, now + 1),
            BindingUpdate("desk-101", [("sip:desk-101@10.0.0.1:6000", 3600), ("sip:desk-101@10.0.0.1:6001", 3600)],
                          "c", 3, now + 2),
        ])
        kept = [b.contact.rsplit(":", 1)[1] for b in store.bindings("desk-101", now + 3)]
        assert kept == [*map(str, range(5003, 5000 + MAX_CONTACTS)), "5000", "6000", "6001"]
        assert len(kept) == MAX_CONTACTS
        assert [b.contact for b in store.bindings("desk-102", now + 3)] == ["sip:desk-102@10.0.0.2:5060"]  # untouched
    finally:
        store.engine.dispose()


@contextmanager
def transaction_held_open(db_url: str, lock_key: int) -> Iterator[Engine]:
    """Another writer in the middle of its transaction, holding `lock_key`, until the block ends.

    The timeouts in these tests only guard against a hang (a shared lock would wait forever)."""
    engine = make_engine(db_url)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with write_transaction(engine, lock_key):
            inside.set()
            release.wait(60)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(30)
        yield engine
    finally:
        release.set()
        holder.join(60)
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_registration_being_stored_does_not_hold_up_a_booking(store, db_url):
    """PostgreSQL: registrations take their own advisory lock, not the booking lock. (SQLite has one
    write lock for the whole file by design.)"""
    with transaction_held_open(db_url, BINDINGS_LOCK_KEY), ThreadPoolExecutor(1) as pool:  # a REGISTER batch
        outcome = pool.submit(book, store, body(["jl", "cc"], tomorrow_at(9))).result(timeout=60)
    assert isinstance(outcome.decision, Accepted)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_call_record_is_written_while_a_booking_is_being_admitted(db_url):
    """PostgreSQL: phones dialling in at a session's start are not queued behind bookings."""
    with transaction_held_open(db_url, BOOKING_LOCK_KEY) as engine, ThreadPoolExecutor(1) as pool:  # a booking
        records = CallRecords(engine)
        rid = pool.submit(records.start, "c1@x", "in", "desk-101", 1_800_000_000).result(timeout=60)
        pool.submit(records.update, rid, ended_at=1_800_000_060, end_reason="bye").result(timeout=60)
        (row,) = records.list()
    assert row["call_id"] == "c1@x" and row["end_reason"] == "bye"
