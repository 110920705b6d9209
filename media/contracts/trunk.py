"""Node ↔ node: what a child node and its session's root node say over the root's /trunk WebSocket.

The child opens the trunk with `Hello` (a trunk grant) and `Offer`; the root answers `Answer`, or
`Error` and closes. While linked the child reports `Present` (its sites with media flowing, on every
change) and `Levels` (audio levels, batched), and the root sends `Order`, the session-wide decision
(media/cascade_session.py). One JSON object per text frame. media/cascade_link.py speaks both sides.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from rooms.ids import SiteId

SLOTS = 3  # a trunk carries one slot per media.trunk.KINDS (audio, video, video); tests/test_contracts.py checks


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- child -> root ---------------------------------------------------------------------------------
class Hello(Message):
    """The first message: a grant for this link (the control plane's, or signed with a shared key)."""
    type: Literal["trunk"] = "trunk"
    grant: str


class Offer(Message):
    """The child's end of the trunk: 1 audio + 2 video, sendrecv, complete (no trickle ICE)."""
    type: Literal["offer"] = "offer"
    sdp: str


class Present(Message):
    """The child's sites with media flowing, in join order."""
    type: Literal["present"] = "present"
    sites: list[SiteId]


class Levels(Message):
    """Audio levels (site, level 0-127 as RFC 6464 says) seen since the previous batch."""
    type: Literal["levels"] = "levels"
    levels: list[tuple[SiteId, int]]


# -- root -> child ---------------------------------------------------------------------------------
class Answer(Message):
    type: Literal["answer"] = "answer"
    sdp: str


class Ranking(Message):
    """The session's sites by precedence, for video and for audio (media.program.SessionRanking)."""
    video: list[SiteId]
    audio: list[SiteId]


Slots = Annotated[list[SiteId | None], Field(min_length=SLOTS, max_length=SLOTS)]


class Order(Message):
    """The session-wide decision: the ranking, the speaker, and the site each trunk slot carries each way."""
    type: Literal["order"] = "order"
    ranking: Ranking
    speaker: SiteId | None
    up: Slots  # child -> root
    down: Slots  # root -> child


class Error(Message):
    """The trunk refused; the root closes it."""
    type: Literal["error"] = "error"
    code: Literal["trunk_refused"]
    detail: str


ToRoot = Annotated[Union[Hello, Offer, Present, Levels], Field(discriminator="type")]
ToChild = Annotated[Union[Answer, Order, Error], Field(discriminator="type")]

TO_ROOT: TypeAdapter[Any] = TypeAdapter(ToRoot)
TO_CHILD: TypeAdapter[Any] = TypeAdapter(ToChild)

MODELS: tuple[type[BaseModel], ...] = (Hello, Offer, Present, Levels, Answer, Ranking, Order, Error)


def wire(msg: Message) -> dict[str, Any]:
    """The JSON object a message is on the wire (the trunk's outbox queues these)."""
    return msg.model_dump(mode="json")
