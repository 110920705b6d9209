"""Absence means never joined. Real aiortc legs join through /ws as the join page does: a site that joins
and leaves raises no absence alarm, a site that never joins does. A control plane that takes over the work
lease, with no memory of the leg that left and the nodes' recent ends forgotten, learns from the database
(call records, quality minutes) who joined, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import time
from datetime import datetime

from confctl.app import make_app
from confctl.config import Settings
from confctl.keys import OPERATIONS, QUALITY
from monitoring.operations import Operations
from monitoring.pipeline import Figures, QualityPipeline
from rooms.store.attendance import Attendance
from rooms.store.calls import CallRecords
from rooms.store.engine import make_engine
from rooms.store.quality import QualityMinutes
from rooms.store.users import Role
from rooms.topology import demo_topology_path
from tests.conftest import add_users
from tests.media.peers import until
from tests.media.test_signalling import TZ, book
from tests.test_monitoring import join_talking

ABSENT_S = 10  # long enough for two sites to join first, under load


async def test_a_site_that_joined_and_left_is_not_absent_even_for_a_new_lease_holder(aiohttp_client, tmp_path):
    alarms = tmp_path / "alarms.yaml"
    alarms.write_text(json.dumps({"defaults": {"absent_s": ABSENT_S}}))
    url = f"sqlite:///{tmp_path}/absence.db"
    c = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(), db_url=url, quality_sample_s=0.5,
                                               alarms_file=alarms)))
    tokens = add_users(url, [("olga", Role.ORGANIZER, None), ("opal", Role.OPERATOR, None)])
    c.h, op = {"Authorization": f"Bearer {tokens['olga']}"}, {"Authorization": f"Bearer {tokens['opal']}"}
    s = await book(c, ["jl", "cc-nongan", "cc-yushu"], datetime.now(TZ))
    started = datetime.fromisoformat(s["occurrences"][0]["start"]).timestamp()
    pipeline, ops = c.app[QUALITY], c.app[OPERATIONS]
    peers, sockets = {}, []

    async def absence_alarms() -> dict[str, list[dict]]:
        rows = (await (await c.get("/api/alarms", headers=op)).json())["alarms"]
        out: dict[str, list[dict]] = {}
        for a in rows:
            if a["kind"] == "site_absent" and a["session_id"] == s["id"]:
                out.setdefault(a["site_id"], []).append(a)
        return out
    try:
        await join_talking(c, s, ("jl", "cc-nongan"), peers, sockets)
        await until(lambda: (s["id"], "node-cc", "cc-nongan") in pipeline.latest, timeout=20, what="Nong'an sampled")
        assert time.time() - started < ABSENT_S, "the joins took longer than the absence threshold: inconclusive"
        await sockets[1].send_json({"type": "leave"})  # Nong'an leaves, long before the session ends
        await sockets[1].close()
        await peers.pop("cc-nongan").close()

        async def nongan_recorded() -> bool:
            rows = (await (await c.get(f"/api/cdrs?session={s['id']}&site=cc-nongan", headers=op)).json())["cdrs"]
            return any(r["kind"] == "webrtc" for r in rows)
        await until(nongan_recorded, timeout=20, what="Nong'an's call record")
        yushu = (await until(lambda: _open(absence_alarms, "cc-yushu"), timeout=ABSENT_S + 20,
                             what="Yushu, never joined, raised absent"))
        assert "has not joined “Live drill”" in yushu["message"]
        rounds = ops.rounds
        await until(lambda: ops.rounds >= rounds + 4, timeout=20, what="four more rounds")
        assert "cc-nongan" not in await absence_alarms() and "jl" not in await absence_alarms()

        # The lease moves to a control plane that never saw Nong'an: a fresh pipeline, and figures without the
        # nodes' recent ends (as after a node restart). Only the database knows Nong'an joined.
        ops.leader = lambda: False
        ops.hand_over()
        fresh = Operations(ops.s, ops.config, QualityPipeline(), 0.5)
        await fresh.take_over()
        for _ in range(6):
            live = await ops.s.gather()
            await fresh.round(Figures(live.sessions, []), time.time())
        assert not any(k[2] == "cc-nongan" for k in fresh.pipeline.history)  # it never saw Nong'an
        assert fresh.raised_total["site_absent"] == 0  # Nong'an not raised; Yushu's adopted, not raised again
        assert [(a["id"], a["cleared_at"]) for a in (await absence_alarms())["cc-yushu"]] == [(yushu["id"], None)]
        assert "cc-nongan" not in await absence_alarms()
    finally:
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()


async def _open(alarms, site: str) -> dict | None:  # type: ignore[no-untyped-def]
    return next((a for a in (await alarms()).get(site, []) if a["cleared_at"] is None), None)


def test_the_database_says_who_joined_an_occurrence_from_call_records_and_minutes(db_url):
    engine = make_engine(db_url)
    try:
        calls, minutes = CallRecords(engine), QualityMinutes(engine)
        start, end = 1_800_000_000, 1_800_003_600

        def leg(site: str, joined: int, left: int | None, kind: str = "webrtc") -> None:
            calls.ended_leg({"call_id": f"{site}{joined}", "leg_id": f"{site}{joined}", "kind": kind, "direction": "in",
                             "caller": site, "site_id": site, "session_id": "ses_a", "started_at": joined,
                             "answered_at": joined, "ended_at": left})
        leg("jl", start + 60, start + 120)  # joined and left: joined
        leg("cc", start - 600, start + 30)  # joined early, still there at the start: joined
        leg("cc-dehui", start - 600, start - 300)  # left before this occurrence began: not this occurrence's
        leg("cc-yushu", start + 60, None)  # a phone answered, still talking
        leg("node-cc->node-jl", start, start + 60, kind="trunk")  # node-to-node: not a site
        calls.start("call-x", "in", "sip:1001", start + 10, site="jl-vehicle", session="ses_a")  # rang, never answered
        minutes.write([{"session_id": "ses_a", "node": "node-cc", "site": "cc-nongan", "minute": start + 120,
                        "kind": "webrtc", "samples": 20, "kbps_in": 900.0, "kbps_out": 1800.0}])
        got = Attendance(engine).joined({"ses_a": (start, end)})
        assert got == {("ses_a", "jl"), ("ses_a", "cc"), ("ses_a", "cc-yushu"), ("ses_a", "cc-nongan")}
        assert Attendance(engine).joined({"ses_a": (end, end + 3600)}) == {("ses_a", "cc-yushu")}  # next occurrence
        assert Attendance(engine).joined({}) == set()
    finally:
        engine.dispose()
