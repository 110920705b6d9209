"""JSON views of decisions: times in the organizer's offset, links named by both ends."""
from __future__ import annotations

from typing import Any

from rooms.admission import Accepted, Refused
from rooms.booking_form import SessionMeta
from rooms.recurrence import iso
from rooms.store.bookings import BookingStore, Outcome
from rooms.topology import Topology


def decision_view(out: Outcome, meta: SessionMeta) -> dict[str, Any]:
    off = meta.tz_offset_min
    d = out.decision
    if isinstance(d, Accepted):
        plan = d.plan.to_dict(out.topology)
        for row in plan["links"]:
            row["name"] = link_name(out.topology, row["link"])
        return {
            "decision": "accepted",
            "media_plan": plan,
            "rooms": dict(d.rooms),
            "occurrences": [{"start": iso(o.start, off), "end": iso(o.end, off)} for o in d.occurrences],
        }
    assert isinstance(d, Refused)
    violations = []
    for v in d.violations:
        row = v.to_dict(out.topology)
        for k in ("occurrence_start", "start", "end"):
            row[k] = iso(row[k], off)
        if row["kind"] == "link":
            row["link_name"] = link_name(out.topology, row["link"])
        violations.append(row)
    first = out.request.occurrences[0]
    alts: list[dict[str, Any]] = []
    for a in d.alternatives:
        if a.shift_s is not None:
            alts.append({"start": iso(first.start + a.shift_s, off), "end": iso(first.end + a.shift_s, off),
                         "profile": out.request.profile, "plan": out.request.plan.value})
        else:
            alts.append({"profile": a.profile, "plan": a.plan.value if a.plan else out.request.plan.value})
    for row in violations:
        row["sentence"] = refusal_sentence(out.topology, row, alts, out.request.profile)
    return {"decision": "refused", "error": "admission_refused", "violations": violations, "alternatives": alts}


def link_name(topo: Topology, link: str) -> str:
    """A link named the same everywhere: its lower site, then its upper ("Nong'an County – Changchun")."""
    l = topo.links[link]  # type: ignore[index]
    return f"{topo.sites[l.child].name} – {topo.sites[l.parent].name}"


def _mbit(kbps: float) -> str:
    return f"{kbps / 1000:.1f}".rstrip("0").rstrip(".")


def refusal_sentence(topo: Topology, v: dict[str, Any], alternatives: list[dict[str, Any]], profile: str) -> str:
    """A refusal in words: "Antu County's 10 Mbit/s link can take 7.5 Mbit/s down; this session needs
    8.5 Mbit/s down — HD720 fits"."""
    fits = next((f"{a['profile'].upper()} fits" for a in alternatives if a.get("profile") != profile and "start" not in a),
                None) or next((f"it fits from {a['start'][11:16]} ({a['start'][:10]})" for a in alternatives if "start" in a),
                              None)
    tail = f" — {fits}" if fits else ""
    if v["kind"] == "room":
        return f"{topo.sites[v['site']].name}'s room {v['room']} is booked then{tail}"
    if v["kind"] != "link":
        return f"media node {v.get('node')} has no room for more legs then{tail}"
    l = topo.links[v["link"]]
    child = topo.sites[l.child].name
    d = v["direction"]
    used = l.limit_kbps - v["available_kbps"]
    booked = f" and {_mbit(used)} Mbit/s of it is booked then" if used > 0 else ""
    return (f"{child}'s {_mbit(l.rate_kbps)} Mbit/s link can take {_mbit(l.limit_kbps)} Mbit/s {d}{booked}; "
            f"this session needs {_mbit(v['demand_kbps'])} Mbit/s {d}{tail}")


def with_sessions_in_the_way(store: BookingStore, view: dict[str, Any]) -> dict[str, Any]:
    """Each link violation names the sessions that already use that link then (id and title)."""
    from datetime import datetime
    for v in view.get("violations", []):
        if v["kind"] != "link":
            continue
        start, end = (int(datetime.fromisoformat(v[k]).timestamp()) for k in ("start", "end"))
        ids = store.link_load(v["link"], start, end)[v["direction"]]["sessions"]
        v["sessions"] = [{"id": i, "title": store.get(i)["title"]} for i in ids]
    return view


def with_booked_load(store: BookingStore, view: dict[str, Any], first_start: int, first_end: int,
                     exclude: str | None = None) -> dict[str, Any]:
    """An accepted plan's links with what is already booked then beside this session, against the limit."""
    if view.get("decision") != "accepted":
        return view
    peaks = store.all_link_peaks(first_start, first_end, exclude=exclude)
    for row in view["media_plan"]["links"]:
        for d in ("up", "down"):
            booked = peaks.get((row["link"], d), 0)
            row[f"{d}_booked_kbps"] = booked
            row[f"{d}_pct"] = round(100 * (booked + row[f"{d}_kbps"]) / row["limit_kbps"]) if row["limit_kbps"] else 0
    return view
