"""What the conference gateway keeps per call: sessions by number, calls in and out, refusals."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from media.room import MediaRoom
from sip_stub.message import Request
from sip_stub.rtp_session import RtpSession
from sip_stub.transactions import InviteServerTransaction


@dataclass(frozen=True)
class Conference:
    session_id: str
    host: str
    sites: frozenset[str]
    windows: tuple[tuple[float, float], ...]  # epoch seconds, margin included
    active: bool
    record: bool = False  # booked with recording: a phone opening the room starts it too
    attachments: tuple[tuple[str, str], ...] = ()  # (site, media node) from the booked plan


class Conferences(Protocol):
    """What the control plane provides: sessions by number, and their rooms."""

    async def by_number(self, number: str) -> Conference | None: ...
    async def room(self, conf: Conference, site: str) -> MediaRoom: ...
    async def release(self, session_id: str) -> None: ...


@dataclass(eq=False)
class Call:
    call_id: str
    local_tag: str
    remote_tag: str
    site: str
    session_id: str
    room: MediaRoom
    rtp: RtpSession
    record_id: int
    invite_tx: InviteServerTransaction | None = None
    confirmed: bool = False
    sdp_version: int = field(default_factory=lambda: int(time.time()))
    # For requests we send in the dialog (a BYE): who is who, where to, our next CSeq.
    number: str = ""  # the session's dial-in number: the watchdog looks the session up by it
    local_party: str = ""  # our From value (with our tag)
    remote_party: str = ""  # our To value (with theirs)
    remote_target: str = ""  # the peer's Contact URI
    advertised: str = ""  # our address as the phone reaches it
    next_cseq: int = 1
    session_interval: int | None = None  # RFC 4028, seconds; the phone refreshes
    session_deadline: float | None = None  # monotonic seconds
    ending: bool = False

    def refreshed(self, now: float) -> None:
        if self.session_interval is not None:
            # §10: the session ends at the interval minus a margin of min(32 s, interval/3)
            # measured from the refresh; we wait the whole interval, the kinder reading.
            self.session_deadline = now + self.session_interval


@dataclass(eq=False)
class Outgoing:
    """A dial-out INVITE waiting for its final response."""

    request: Request
    room: MediaRoom
    rtp: RtpSession
    site: str
    session_id: str
    record_id: int
    local_tag: str
    via: str  # our host:port, for the ACK
    endpoint: Any
    number: str = ""  # the session's dial-in number


class CallRejected(Exception):
    """The gateway turns a call away with a SIP status (admission's refusal is rooms.admission.Refused)."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or []
