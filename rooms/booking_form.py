"""A booking as organizers write it (JSON body, CLI flags) -> a BookingRequest.

Validation of shape and types lives here, shared by the API and the CLI;
names are checked against the topology by `admission.normalise`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rooms.admission import BookingRequest, RequestError, SiteChoice
from rooms.ids import PlanKind, RoomId, SiteId
from rooms.plan import Layout
from rooms.preemption import Precedence
from rooms.recurrence import expand, offset_minutes, parse_instant
from rooms.text import OneLine

# Every string is one line of text (rooms.text): a line feed in a title would break the iCalendar
# invite, the CLI's table and every log line that names the session; NUL cannot be stored in
# PostgreSQL; a bidi override would show organizers another title than the one stored.


class BookingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: OneLine = Field(min_length=1, max_length=200)
    host_site: OneLine = Field(min_length=1, max_length=100)
    sites: list[OneLine] = Field(default_factory=list, max_length=200, description="site ids, or site/room to pin a room; the host is always included")
    start: OneLine = Field(max_length=64, description="ISO 8601 with offset, e.g. 2026-12-01T09:00:00+08:00")
    end: OneLine = Field(max_length=64, description="ISO 8601 with offset")
    profile: OneLine = Field(default="hd720", max_length=64, description="hd1080 | hd720 | sd | audio (the topology's profiles)")
    plan: Literal["cascade", "central"] = "cascade"
    recurrence: Optional[OneLine] = Field(default=None, max_length=500, description="RFC 5545 RRULE with COUNT or UNTIL")
    record: bool = False
    precedence: Literal["routine", "priority", "emergency"] = Field(
        default="routine", description="above routine needs the emergency permission; lower-precedence sessions give way")
    layouts: dict[OneLine, Literal["full", "speaker", "audio"]] = Field(
        default_factory=dict, description="sites that receive a smaller program: the speaker only, or audio only")
    auto_layouts: bool = Field(default=False, description="let admission give sites behind links too thin for the "
                               "full program the richest layout that fits (the plan's `layouts` says which)")
    override: bool = Field(default=False, description="admins only: book even where admission refuses (the "
                           "capacity harness ramps past the model); recorded on the session with what it overrode")
    codec: Literal["vp8", "h264"] = Field(default="vp8", description="the session's video codec, one for every site "
                                          "(forwarded, never transcoded): h264 when room systems that send H.264 join; "
                                          "an h264 session runs central and is not recorded, for now")

    @model_validator(mode="after")
    def _what_h264_cannot_do_yet(self) -> "BookingBody":
        # Trunks between nodes negotiate VP8 only, and recordings are WebM (VP8): an H.264 session booked
        # as either would show no video between nodes or write files no player opens. Refused in words.
        if self.codec == "h264":
            if "plan" not in self.model_fields_set:
                self.plan = "central"
            elif self.plan == "cascade":
                raise ValueError("plan: an h264 session runs central for now (trunks between nodes carry VP8 only); "
                                 "leave plan out or give central")
            if self.record:
                raise ValueError("record: an h264 session cannot be recorded yet (recordings are WebM, VP8); "
                                 "book it with codec vp8 to record it")
        return self


class BookingPatch(BaseModel):
    """Only the fields given change; `null` is refused (leave a field out to keep it)."""
    model_config = ConfigDict(extra="forbid")
    title: Optional[OneLine] = Field(default=None, min_length=1, max_length=200)
    host_site: Optional[OneLine] = Field(default=None, min_length=1, max_length=100)
    sites: Optional[list[OneLine]] = Field(default=None, max_length=200)
    start: Optional[OneLine] = Field(default=None, max_length=64)
    end: Optional[OneLine] = Field(default=None, max_length=64)
    profile: Optional[OneLine] = Field(default=None, max_length=64)
    plan: Optional[Literal["cascade", "central"]] = None
    recurrence: Optional[OneLine] = Field(default=None, max_length=500)
    record: Optional[bool] = None
    precedence: Optional[Literal["routine", "priority", "emergency"]] = None
    # no `codec`: legs already in the session would keep the old one (issue 26 decides how to switch it)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k != "recurrence")
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: null is not a value here; leave a field out to keep it")
        return data


@dataclass(frozen=True)
class SessionMeta:
    title: str
    tz_offset_min: int
    recurrence: str | None
    record: bool
    start_iso: str
    end_iso: str
    precedence: int = 0  # rooms.preemption.Precedence
    codec: str = "vp8"  # the session's video codec: vp8 | h264


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]


def parse_body(raw: Any) -> BookingBody:
    if not isinstance(raw, dict):
        raise RequestError("invalid_body", "the booking must be a JSON object")
    try:
        return BookingBody.model_validate(raw)
    except ValidationError as exc:
        raise FormError(validation_detail(exc)) from None


class FormError(RequestError):
    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__("invalid_body", "; ".join(f"{p['field']}: {p['problem']}" for p in problems))
        self.problems = problems


def site_choice(token: str) -> SiteChoice:
    site, sep, room = token.partition("/")
    if not site or (sep and not room):
        raise RequestError("invalid_site", f"{token!r}: give a site id or site/room")
    return SiteChoice(SiteId(site), RoomId(room) if room else None)


def to_request(body: BookingBody, now: datetime) -> tuple[BookingRequest, SessionMeta]:
    start = parse_instant(body.start, "start")
    end = parse_instant(body.end, "end")
    occurrences = expand(start, end, body.recurrence, now)
    host = site_choice(body.host_site)  # the host may pin its room too: "jl/emergency"
    req = BookingRequest(
        host_site=host.site,
        sites=(host, *(site_choice(s) for s in body.sites)),
        occurrences=occurrences,
        profile=body.profile,
        plan=PlanKind(body.plan),
        layouts=tuple((SiteId(s), Layout(l)) for s, l in sorted(body.layouts.items())),
        auto_layouts=body.auto_layouts,
    )
    meta = SessionMeta(body.title, offset_minutes(start), body.recurrence or None, body.record,
                       start.isoformat(), end.isoformat(), int(Precedence[body.precedence.upper()]), body.codec)
    return req, meta


def stored_as_body(session: dict[str, Any]) -> dict[str, Any]:
    """A stored session written as the booking body that would recreate it (rooms pinned)."""
    host = next(s for s in session["sites"] if s["site"] == session["host_site"])
    return {
        "title": session["title"], "host_site": f"{host['site']}/{host['room']}",
        "sites": [f"{s['site']}/{s['room']}" for s in session["sites"] if s["site"] != session["host_site"]],
        "start": session["start"], "end": session["end"], "profile": session["profile"], "plan": session["plan"],
        "recurrence": session["recurrence"], "record": session["record"],
        "precedence": session.get("precedence", "routine"),
        "codec": session.get("codec", "vp8"),
        "layouts": dict(session["media_plan"].get("layouts", {})),  # chosen by hand or for thin links: kept
    }


def patched_body(session: dict[str, Any], patch: "BookingPatch") -> "BookingBody":
    """The booking body of a stored session with a patch applied (what an edit re-admits)."""
    merged = stored_as_body(session)
    changes = patch.model_dump(exclude_unset=True)
    if "sites" in changes or "host_site" in changes:
        # New participants choose free rooms again unless pinned.
        merged["host_site"] = changes.get("host_site", session["host_site"])
    merged.update(changes)
    return BookingBody.model_validate(merged)
