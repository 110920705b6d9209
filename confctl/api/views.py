"""JSON views of decisions: times in the organizer's offset, links named by both ends."""
from __future__ import annotations

from typing import Any

from rooms.admission import Accepted, Refused
from rooms.booking_form import SessionMeta
from rooms.recurrence import iso
from rooms.store.bookings import Outcome


def decision_view(out: Outcome, meta: SessionMeta) -> dict[str, Any]:
    off = meta.tz_offset_min
    d = out.decision
    if isinstance(d, Accepted):
        return {
            "decision": "accepted",
            "media_plan": d.plan.to_dict(out.topology),
            "rooms": dict(d.rooms),
            "occurrences": [{"start": iso(o.start, off), "end": iso(o.end, off)} for o in d.occurrences],
        }
    assert isinstance(d, Refused)
    violations = []
    for v in d.violations:
        row = v.to_dict(out.topology)
        for k in ("occurrence_start", "start", "end"):
            row[k] = iso(row[k], off)
        violations.append(row)
    first = out.request.occurrences[0]
    alts: list[dict[str, Any]] = []
    for a in d.alternatives:
        if a.shift_s is not None:
            alts.append({"start": iso(first.start + a.shift_s, off), "end": iso(first.end + a.shift_s, off),
                         "profile": out.request.profile, "plan": out.request.plan.value})
        else:
            alts.append({"profile": a.profile, "plan": a.plan.value if a.plan else out.request.plan.value})
    return {"decision": "refused", "error": "admission_refused", "violations": violations, "alternatives": alts}
