"""What outlives the 15-minute history: per-minute aggregates and call records, on SQLite and PostgreSQL."""
from __future__ import annotations

from monitoring.pipeline import LegSample
from monitoring.summaries import MinuteAggregator, leg_quality
from rooms.store.alarms import AlarmStore
from rooms.store.calls import CallRecords
from rooms.store.engine import make_engine
from rooms.store.quality import QualityMinutes


def _s(t: float, loss: float, mos: float, site: str = "cc-nongan") -> LegSample:
    return LegSample(t, "ses_1", "node-cc", site, "webrtc", 800, 1600, loss, 4.0, 30.0, 25, "640x360", 0, mos, 4.5)


def test_a_minute_is_handed_back_once_the_next_begins_with_averages_and_worsts():
    agg = MinuteAggregator()
    assert agg.add([_s(600, 0, 4.4), _s(630, 4, 3.4)], 640) == []  # minute 600 still open
    (row,) = agg.add([_s(663, 0, 4.4)], 663)
    assert row["minute"] == 600 and row["samples"] == 2 and row["loss_avg"] == 2 and row["loss_max"] == 4
    assert row["mos_min"] == 3.4 and row["mos_avg"] == 3.9 and row["kbps_in"] == 800
    assert [r["minute"] for r in agg.flush()] == [660]


def test_a_call_records_quality_is_of_its_own_time_only():
    q = leg_quality([_s(100, 0, 4.4), _s(103, 6, 3.0), _s(200, 50, 1.0)], 99, 104)
    assert q["worst_mos"] == 3.0 and q["avg_loss_pct"] == 3 and q["worst_loss_pct"] == 6


def test_minutes_alarms_and_records_are_stored_filtered_and_purged(db_url):
    engine = make_engine(db_url)
    try:
        minutes = QualityMinutes(engine)
        agg = MinuteAggregator()
        agg.add([_s(600, 1, 4.2), _s(610, 3, 3.9, "jl")], 600)
        minutes.write(agg.add([], 700))
        minutes.write([dict(minutes.list(site="jl")[0], samples=7)])  # the same minute again: replaced, not doubled
        assert [(r["site"], r["samples"]) for r in minutes.list(session="ses_1")] == [("cc-nongan", 1), ("jl", 7)]
        assert minutes.purge(before=660) == 2 and minutes.list() == []

        calls = CallRecords(engine)
        leg = {"call_id": "leg_1", "leg_id": "leg_1", "kind": "webrtc", "direction": "in", "caller": "cc-nongan",
               "site_id": "cc-nongan", "session_id": "ses_1", "node": "node-cc", "started_at": 100, "ended_at": 160,
               "end_reason": "left", "worst_mos": 3.0}
        assert calls.ended_leg(leg) and not calls.ended_leg(leg)  # the node repeats it: written once
        calls.start("sip-1", "in", "sip:p@x", 120, account="p", site="cc-yushu", session="ses_1")
        assert [r["kind"] for r in calls.list(session="ses_1")] == ["sip", "webrtc"]
        assert [r["leg_id"] for r in calls.list(kind="webrtc", site="cc-nongan", since=100, until=101)] == ["leg_1"]
        assert calls.list(site="cc-nongan", since=101) == []
        assert calls.purge(before=1000) == 1  # the SIP call has not ended: kept
        alarms = AlarmStore(engine)
        a = alarms.raised({"kind": "leg_loss", "subject": "ses_1/cc-nongan", "message": "7 % loss"}, 100)
        assert alarms.acknowledge(a, "opal", 110)["acked_by"] == "opal"
        assert alarms.purge(before=1000) == 0  # open alarms stay
        alarms.cleared(a, 120)
        assert alarms.list(open_only=True) == [] and alarms.purge(before=1000) == 1
    finally:
        engine.dispose()


def test_a_trunks_call_record_with_its_long_id_is_stored_once_on_every_backend(db_url):
    # The id the quality loop gives a trunk that ended (monitoring/operations.py): about 54 characters.
    from rooms.store.calls import CallRecords
    engine = make_engine(db_url)
    calls = CallRecords(engine)
    leg_id = "trunk:ses_0123456789abcdef:node-jlc->node-jl:1765123456"
    assert len(leg_id) > 40
    row = {"call_id": leg_id, "leg_id": leg_id, "kind": "trunk", "direction": "out", "caller": "node-jlc->node-jl",
           "session_id": "ses_0123456789abcdef", "node": "node-jl", "started_at": 1, "answered_at": 1, "ended_at": 2,
           "end_reason": "closed"}
    assert calls.ended_leg(row) is True
    assert calls.ended_leg(row) is False  # repeated by the node: written once
    assert [r["leg_id"] for r in calls.list(kind="trunk")] == [leg_id]
    engine.dispose()
