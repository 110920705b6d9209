"""The /ws protocol: what a site's browser (or any site client) and the control plane or a media node say.

A site sends `join` (its join token to the control plane's /ws, or the grant a redirect gave it to a
node's /ws), then `offer`, and `leave` when it goes. It is answered `redirect` (go to this node with
this grant), `joined`, `answer`, then `program` whenever what it sees and hears changes; along the
way it may be told `rejoin`, `ended`, `layout` or `error`. One JSON object per text frame.

media/signalling.py serves it; confctl/pages/join.js, harness/site_agent.py, scripts/bench/cascade.py
and the tests speak it; GET /api/ws-schema.json publishes `json_schema()`.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import SkipJsonSchema

from rooms.ids import SessionId, SiteId
from rooms.plan import Layout

Mode = Literal["meeting", "echo"]  # echo: the self-test, the site's own media back from the node
EndedReason = Literal["replaced", "ended_by_admin", "preempted"]  # media.room.TOLD: the page does not rejoin
ErrorCode = Literal[
    "invalid_json", "invalid_message", "unknown_type",  # not a message of this protocol
    "not_joined", "already_joined",  # out of order
    "invalid_token", "unknown_session", "session_cancelled", "site_not_in_session", "outside_window",
    "preempted",  # the control plane refuses the join token: said, and final
    "not_ready", "invalid_grant", "wrong_node",  # a node refuses: join again through the control plane
    "invalid_sdp", "no_media_ports",  # the offer
]


def _type_required(schema: dict[str, Any]) -> None:
    # `type` has a default so that code builds Offer(sdp=...), but on the wire it is always there.
    schema["required"] = ["type", *schema.get("required", [])]


def _omitted_when_none(description: str) -> Any:
    """An optional field that is absent from the wire, never null (so the schema says only its type)."""
    return Field(None, description=description, exclude_if=lambda v: v is None,
                 json_schema_extra=lambda s: s.pop("default", None))


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_type_required)


# -- a site sends ----------------------------------------------------------------------------------
class Join(Message):
    """The first message on a connection. The control plane reads `token` and `mode`; a node reads `grant`
    (whose own fields say meeting or echo)."""
    type: Literal["join"] = "join"
    token: str | SkipJsonSchema[None] = _omitted_when_none("the site's join token, from its join URL (control plane)")
    grant: str | SkipJsonSchema[None] = _omitted_when_none("the grant a `redirect` carried (media node)")
    mode: Mode | SkipJsonSchema[None] = _omitted_when_none("meeting when absent; echo is the self-test")


class Offer(Message):
    """The site's complete SDP offer (no trickle ICE), after `joined`."""
    type: Literal["offer"] = "offer"
    sdp: str


class Leave(Message):
    """The site leaves: its leg ends as left, not as disconnected."""
    type: Literal["leave"] = "leave"


# -- a site is told --------------------------------------------------------------------------------
class Redirect(Message):
    """The control plane placed this site on a media node: open `url` and join with `grant`."""
    type: Literal["redirect"] = "redirect"
    url: str
    grant: str
    notice: str | SkipJsonSchema[None] = _omitted_when_none("said to the site, e.g. its node is down and it joins elsewhere")


class Joined(Message):
    type: Literal["joined"] = "joined"
    session: SessionId
    site: SiteId
    host: SiteId
    mode: Mode
    notice: str | SkipJsonSchema[None] = _omitted_when_none("said to the site, e.g. it joins through another node")


class Answer(Message):
    type: Literal["answer"] = "answer"
    sdp: str


class ProgramUpdate(Message):
    """Which site each incoming video (in transceiver order) and the audio now carry; null: nobody."""
    type: Literal["program"] = "program"
    video: list[SiteId | None]
    audio: SiteId | None


class Rejoin(Message):
    """Join again through the control plane (the session moved to another node)."""
    type: Literal["rejoin"] = "rejoin"
    reason: str


class Ended(Message):
    """The node ended this leg for a reason that a rejoin would not fix."""
    type: Literal["ended"] = "ended"
    reason: EndedReason
    detail: str


class LayoutChange(Message):
    """What this site now receives changed (an emergency took or gave back its link), and why."""
    type: Literal["layout"] = "layout"
    layout: Layout
    detail: str


class Error(Message):
    """A join or message refused; the connection keeps serving. `detail` is words for the person."""
    type: Literal["error"] = "error"
    code: ErrorCode
    detail: str


ToServer = Annotated[Union[Join, Offer, Leave], Field(discriminator="type")]
ToSite = Annotated[Union[Redirect, Joined, Answer, ProgramUpdate, Rejoin, Ended, LayoutChange, Error],
                   Field(discriminator="type")]
AnyMessage = Annotated[Union[Join, Offer, Leave, Redirect, Joined, Answer, ProgramUpdate, Rejoin, Ended,
                             LayoutChange, Error], Field(discriminator="type")]

TO_SERVER: TypeAdapter[Join | Offer | Leave] = TypeAdapter(ToServer)
TO_SITE: TypeAdapter[Any] = TypeAdapter(ToSite)
ANY_MESSAGE: TypeAdapter[Any] = TypeAdapter(AnyMessage)


def models(direction: Any) -> tuple[type[Message], ...]:
    """The message classes of ToServer or ToSite."""
    return get_args(get_args(direction)[0])


def json_schema() -> dict[str, Any]:
    """Every message as JSON Schema (2020-12), with `$defs/ToServer` and `$defs/ToSite` for one direction."""
    schema = ANY_MESSAGE.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "confctl /ws"
    schema["description"] = __doc__.split("\n\n")[0].replace("\n", " ")
    for name, direction in (("ToServer", ToServer), ("ToSite", ToSite)):
        schema["$defs"][name] = {"oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in models(direction)]}
    return schema
