"""The schema of a topology document (`rooms/data/jilin.yaml`, or `PUT /api/topology` as JSON).

Types and ranges are checked here, once, for files and API bodies alike: a rate is a
finite number of Mbit/s within what a link can be (no NaN, Infinity or 1e308), a share a
fraction, a name printable text (`rooms.text`). What needs the whole tree (parents exist, no cycles,
one root) is checked by `rooms.topology.parse_topology` after this.
"""
from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rooms.email_address import EmailAddress
from rooms.text import Name

ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"  # site and room ids appear in URLs and as site/room
MAX_MBPS = 400_000  # faster than any link of a government WAN; keeps kbit/s arithmetic exact

Mbps = Annotated[float, Field(gt=0, le=MAX_MBPS, allow_inf_nan=False)]
Text = Annotated[Name, Field(max_length=200)]  # names of the network, sites and rooms
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=ID)]
Overhead = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Strict(BaseModel):
    # strict: "10" is not a rate and true is not a count; unknown keys are kept (documents carry notes)
    model_config = ConfigDict(strict=True, extra="allow")


class RoomDoc(_Strict):
    id: Ident
    name: Optional[Text] = None


class SiteDoc(_Strict):
    id: Ident
    level: Annotated[str, Field(max_length=32, pattern=r"^[A-Za-z0-9_.\-]*$")] = ""
    parent: Optional[Ident] = None
    name: Optional[Text] = None
    name_zh: Optional[Text] = None
    uplink_mbps: Optional[Mbps] = None
    access_mbps: Optional[Mbps] = None
    rtt_ms: Optional[Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]] = None
    admitted_share: Optional[Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]] = None
    media_node_legs: Optional[Annotated[int, Field(gt=0, le=100_000)]] = None
    rooms: Optional[Annotated[list[RoomDoc], Field(min_length=1, max_length=1000)]] = None
    contact: Optional[EmailAddress] = None  # where the site's invites are mailed (its conference room's desk)


class ProfileDoc(_Strict):
    name: Ident
    video_kbps: Annotated[int, Field(ge=0, le=100_000)] = 0
    audio_kbps: Annotated[int, Field(gt=0, le=10_000)] = 64
    width: Annotated[int, Field(ge=0, le=16_384)] = 0
    height: Annotated[int, Field(ge=0, le=16_384)] = 0
    fps: Annotated[int, Field(ge=0, le=240)] = 0
    video_overhead: Overhead = 0.05
    audio_overhead: Overhead = 0.25


class TopologyDocument(_Strict):
    network: Optional[Ident] = None
    name: Optional[Text] = None
    name_zh: Optional[Text] = None
    admitted_share: Optional[Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]] = None
    cascade_levels: Optional[list[Annotated[str, Field(max_length=32)]]] = None
    default_rooms: Optional[dict[str, Annotated[list[RoomDoc], Field(min_length=1, max_length=1000)]]] = None
    profiles: Optional[Annotated[list[ProfileDoc], Field(min_length=1, max_length=32)]] = None
    sites: Annotated[list[SiteDoc], Field(min_length=1, max_length=100_000)]


def document_problems(doc: Any) -> list[str]:
    """Every type or range problem of the document, each naming its site where it has one."""
    try:
        TopologyDocument.model_validate(doc)
    except ValidationError as exc:
        return [_problem(doc, e) for e in exc.errors()]
    return []


def _problem(doc: Any, e: Any) -> str:
    loc = list(e["loc"])
    where = ".".join(str(p) for p in loc) or "topology"
    if len(loc) >= 2 and loc[0] == "sites" and isinstance(loc[1], int):
        try:
            sid = doc["sites"][loc[1]].get("id")
        except (AttributeError, IndexError, KeyError, TypeError):
            sid = None
        field = ".".join(str(p) for p in loc[2:]) or "entry"
        where = f"site {sid}: {field}" if isinstance(sid, str) else f"sites[{loc[1]}].{field}"
    value = e.get("input")
    shown = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
    return f"{where}: {e['msg']} (got {shown[:60]})"
