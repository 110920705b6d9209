"""What emergencies took and gave back lately, as the operators' panel shows it live: for a page that
opens after the fact. Records newest first (rooms/store/preemptions.py writes them), grouped into the
events confctl/live_plans.py announces: one per session, emergency, moment and direction."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from rooms.caps import WORDS
from rooms.store.engine import read_transaction
from rooms.store.tables import PreemptionRow, SessionRow

PT = PreemptionRow.__table__
ST = SessionRow.__table__


def recent_preemption_records(engine: Engine, since: int, limit: int) -> list[dict[str, Any]]:
    """Records at or after `since`, newest first, with both sessions' titles; the emergency's limits on its
    own sites are left out (they are not something another session gave)."""
    victim, emergency = ST.alias("victim"), ST.alias("emergency")
    q = (select(PT, victim.c.title.label("title"), emergency.c.title.label("emergency_title"))
         .join(victim, victim.c.id == PT.c.session_id, isouter=True)
         .join(emergency, emergency.c.id == PT.c.emergency_id, isouter=True)
         .where(PT.c.at >= since, PT.c.session_id != PT.c.emergency_id)
         .order_by(PT.c.at.desc(), PT.c.id.desc()).limit(limit))
    with read_transaction(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def as_events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records (newest first) grouped as the live feed's pre-emption events, newest first."""
    events: dict[tuple[int, str, str, bool], dict[str, Any]] = {}
    for r in records:
        restored = r["kind"] == "restore"
        e = events.setdefault((r["at"], r["emergency_id"], r["session_id"], restored), {
            "type": "preemption", "event": "restored" if restored else "preempted", "session": r["session_id"],
            "title": r.get("title") or r["session_id"], "emergency": r["emergency_id"],
            "emergency_title": r.get("emergency_title") or r["emergency_id"], "at": r["at"], "steps": [],
            "dropped": [], "history": True})
        e["steps"].insert(0, {"link": r["link"], "direction": r["direction"], "kind": r["kind"],
                              "to": WORDS.get(r["step"], r["step"]), "from_kbps": r["from_kbps"],
                              "to_kbps": r["to_kbps"], "sites": r["sites"]})
        if r["kind"] == "drop":
            e["dropped"] += [s for s in r["sites"].split() if s not in e["dropped"]]
    return list(events.values())
