"""Control plane ↔ media node: what a node process and the control plane say to each other over HTTP.

A node registers, and beats with its load, at POST /api/media-nodes (`NodeRegistration`, answered
`NodeRegistered` with its grant key). The control plane reads the node's live figures at GET /figures
(`NodeFigures`), ends a leg at POST /legs/end (`EndLeg` → `LegEnded`) and makes a session follow a
changed plan at POST /legs/plan (`FollowPlan` → `PlanFollowed`); those three calls are signed with
the node's key (media/grants.py), and a refusal is a `Problem`. GET /health is the liveness probe
(rooms/node_liveness.py: down = phi accrual on the beats, corroborated by this probe).

media/node_server.py serves the node's side; confctl/api/nodes.py, confctl/node_figures.py and
confctl/node_calls.py the control plane's; monitoring/ reads the figures. Node ↔ node is trunk.py.
The same figures models are what the in-process node returns, and what /api/live shows operators.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from rooms.ids import NodeId, SessionId, SiteId
from rooms.node_liveness import HEARTBEAT_S, ROOT_LOST_S, TRUNK_HEARTBEAT_S  # noqa: F401  (the timings, here too)

# -- paths -----------------------------------------------------------------------------------------
WS_PATH = "/ws"  # a site's leg (contracts/browser.py), on the control plane and on each node
TRUNK_PATH = "/trunk"  # a child node's link to its session's root node (trunk.py)
FIGURES_PATH = "/figures"
LEGS_END_PATH = "/legs/end"
LEGS_PLAN_PATH = "/legs/plan"
HEALTH_PATH = "/health"
REGISTER_PATH = "/api/media-nodes"  # on the control plane


def _omitted_when_none(description: str = "") -> Any:
    """A field absent from the wire when it has no value (never null)."""
    return Field(None, description=description, exclude_if=lambda v: v is None)


class Body(BaseModel):
    # Unknown fields are refused: a typo between two processes is an error at once, not a silent zero.
    model_config = ConfigDict(extra="forbid")


# -- registration and heartbeat --------------------------------------------------------------------
class NodeLoad(Body):
    """What a node process carries, reported with each heartbeat."""
    legs: int = Field(ge=0, le=100_000)
    rooms: int = Field(ge=0, le=100_000)
    cpu_percent: float = Field(ge=0, le=10_000, allow_inf_nan=False)  # of one core, over the last beat
    kbps_in: int = Field(ge=0, le=100_000_000)
    kbps_out: int = Field(ge=0, le=100_000_000)
    media_ports_refused: int = Field(default=0, ge=0, le=1_000_000_000)  # legs refused: --ice-ports full, since start


class NodeRegistration(Body):
    """A node's registration, repeated every HEARTBEAT_S as its beat."""
    id: NodeId = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=8, max_length=300, pattern=r"^https?://[^/\s]+$")
    load: NodeLoad | None = None


class NodeRegistered(Body):
    """The control plane's answer: the node's own key (hex), which verifies its grants and the control plane's calls."""
    id: NodeId
    grant_key: str = Field(pattern=r"^([0-9a-f]{2})+$")


class Problem(BaseModel):
    """A refused call's body (4xx, 5xx), as the control plane's API errors are."""
    model_config = ConfigDict(extra="allow")  # the control plane's errors may carry more (confctl/errors.py)
    error: str
    detail: Any = None


class Health(Body):
    ok: bool
    registered: bool
    registration_refused: bool
    rooms: int
    tasks: dict[str, Any]


# -- /figures --------------------------------------------------------------------------------------
class Program(Body):
    """Which site each outgoing video (in transceiver order) and the audio carry; None: nobody."""
    video: list[SiteId | None]
    audio: SiteId | None


class Output(Body):
    """One track the node sends a leg."""
    kind: str  # audio | video
    live: bool
    recv_calls: int
    queued: int
    subscribed: bool


class WebrtcLeg(Body):
    """A site's WebRTC leg: cumulative counters, plus bitrates and RTCP figures where known."""
    kind: Literal["webrtc"] = "webrtc"
    site: SiteId
    state: str  # media.room.LegState
    frames_in: dict[str, int] = {}  # by medium (audio, video)
    bytes_in: dict[str, int] = {}
    resolution: str | None = None  # "1280x720" of the site's camera, once seen
    frames_forwarded: int = 0
    frames_dropped: int = 0
    freezes: int = 0
    # frames of its camera dropped for exceeding its reserved rate (media/policing.py); absent when not policed
    policed_frames: int | None = _omitted_when_none()
    bytes_forwarded: int = 0
    program: Program | None = None
    senders_started: int = 0
    outputs: list[Output] = []
    # kbit/s since the previous /figures: absent on the first
    bitrate_in_kbps: int | None = _omitted_when_none()
    bitrate_out_kbps: int | None = _omitted_when_none()
    # RTCP: absent when the peer connection had no stats (stats_error says why)
    packets_lost: int | None = _omitted_when_none()
    packets_received: int | None = _omitted_when_none()
    jitter_ms: float | None = _omitted_when_none("the larger of the media's")
    jitter_ms_by_kind: dict[str, float] | None = _omitted_when_none("audio and video judged apart (monitoring/alarm_rules.py)")
    rtt_ms: float | None = None  # null also while the site's receiver reports have not come
    stats_error: str | None = _omitted_when_none()
    node: NodeId | None = _omitted_when_none("the node room that holds it, in a cascade")


class PhoneLeg(Body):
    """A site joined by telephone (the SIP gateway's room)."""
    kind: Literal["sip"] = "sip"
    site: SiteId
    state: Literal["phone"] = "phone"
    muted: bool = False
    frames_in: dict[str, int] = {}
    bytes_in: dict[str, int] = {}
    samples_in: int = 0
    node: NodeId | None = _omitted_when_none()


class RtcpFigures(Body):
    """Loss and jitter of what a peer sends; RTT from its receiver reports (media.room.rtcp_figures)."""
    packets_lost: int
    packets_received: int
    jitter_ms: float
    jitter_ms_by_kind: dict[str, float]
    rtt_ms: float | None


def _leg_kind(v: Any) -> str:
    # A leg without `kind` is WebRTC (nodes before the contract said it only of phones).
    return (v.get("kind") or "webrtc") if isinstance(v, dict) else getattr(v, "kind", "webrtc")


LegFigures = Annotated[Union[Annotated[WebrtcLeg, Tag("webrtc")], Annotated[PhoneLeg, Tag("sip")]],
                       Discriminator(_leg_kind)]


class TrunkFigures(Body):
    """A trunk as its session's root sees it: bytes each way, kbit/s since the previous look, its slots."""
    child: NodeId
    parent: NodeId
    connected: bool = False
    bytes_down: int = 0  # root -> child
    bytes_up: int = 0
    process: str = ""  # "in-process" | "node process"
    down: list[SiteId | None] = []
    up: list[SiteId | None] = []
    kbps_down: int | None = _omitted_when_none()
    kbps_up: int | None = _omitted_when_none()


class BranchCounters(Body):
    """What a root's branch knows of its child's end (media.cascade_session.Branch)."""
    bytes_up: int
    process: str


class LinkFigures(Body):
    """A child node's link to its session's root, as the child sees it."""
    child: NodeId
    parent: NodeId
    linked: bool
    bytes_up: int
    bytes_down: int


class SessionFigures(Body):
    session: SessionId
    host: SiteId
    legs: list[LegFigures] = []
    trunks: list[TrunkFigures] | None = _omitted_when_none("at a cascade's root")
    link: LinkFigures | None = _omitted_when_none("at a child node")
    node: str | None = _omitted_when_none("the node process that reported it (\"in-process\"), set by the control plane")


class EndedLeg(Body):
    """A leg (or phone) that ended lately, for its call record; nodes repeat it for a few minutes."""
    id: str
    session: SessionId
    site: SiteId
    kind: Literal["webrtc", "sip"]
    node: str | None  # None in the control plane's own rooms, until the control plane names it
    joined_at: float
    left_at: float
    reason: str  # rooms.end_reason.EndReason


class NodeFigures(Body):
    """GET /figures."""
    node: NodeId
    sessions: list[SessionFigures]
    ended: list[EndedLeg]


# -- calls from the control plane ------------------------------------------------------------------
class EndLeg(Body):
    """POST /legs/end: an administrator ends a site's leg."""
    session: SessionId
    site: SiteId


class LegEnded(Body):
    ended: bool  # False: the site has no leg on this node


class FollowPlan(Body):
    """POST /legs/plan: a session's plan changed (an emergency took or gave back capacity)."""
    session: SessionId
    layouts: dict[SiteId, str] = {}  # each site's layout (rooms.plan.Layout value)
    dropped: list[SiteId] = []  # sites whose legs end
    why: str = ""  # what the sites are told


class PlanFollowed(Body):
    changed: list[SiteId] = []  # sites whose layout changed here
    ended: list[SiteId] = []


SESSIONS: TypeAdapter[list[SessionFigures]] = TypeAdapter(list[SessionFigures])
ENDED: TypeAdapter[list[EndedLeg]] = TypeAdapter(list[EndedLeg])
LEGS: TypeAdapter[list[Any]] = TypeAdapter(list[LegFigures])

# Every model of this contract, for tests/test_contracts.py and any schema published later.
MODELS: tuple[type[BaseModel], ...] = (NodeLoad, NodeRegistration, NodeRegistered, Problem, Health, Program, Output,
                                       WebrtcLeg,
                                       PhoneLeg, RtcpFigures, TrunkFigures, BranchCounters, LinkFigures, SessionFigures,
                                       EndedLeg, NodeFigures, EndLeg, LegEnded, FollowPlan, PlanFollowed)
