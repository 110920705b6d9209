"""Tables. Times are epoch seconds (int): one representation on SQLite and PostgreSQL."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Float, Integer, String, Text
from sqlmodel import Field, SQLModel


class TopologyRow(SQLModel, table=True):
    __tablename__ = "topology"
    id: int = Field(default=1, primary_key=True)
    version: int
    doc: str = Field(sa_column=Column(Text, nullable=False))  # the topology document as JSON
    loaded_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class SessionRow(SQLModel, table=True):
    __tablename__ = "session"
    id: str = Field(primary_key=True, max_length=40)
    title: str = Field(max_length=200)
    host_site: str = Field(max_length=100)
    profile: str = Field(max_length=40)
    plan: str = Field(max_length=20)
    start: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    end: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_end: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))  # end of the last occurrence
    tz_offset_min: int
    recurrence: Optional[str] = Field(default=None, max_length=500)
    record: bool = False
    organizer_id: str = Field(max_length=40)
    status: str = Field(max_length=20)  # booked | cancelled
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    sites_json: str = Field(sa_column=Column(Text, nullable=False))  # [{"site":..,"room":..}], host first
    plan_json: str = Field(sa_column=Column(Text, nullable=False))  # MediaPlan.to_dict()
    occurrences_json: str = Field(sa_column=Column(Text, nullable=False))  # [[start, end], ...]
    dial_in: Optional[str] = Field(default=None, max_length=12, unique=True)  # the number phones dial
    # Random, never reused: names one version of plan_json/sites_json for the held memo.
    revision: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Booked by an admin past admission (the capacity harness ramps past the model): who, and the
    # violations that admission reported and the booking overrode.
    override_by: Optional[str] = Field(default=None, max_length=40)
    override_json: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    # Bumped by every edit and the cancel: calendar clients replace an invite with a higher SEQUENCE.
    sequence: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    precedence: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))  # rooms.preemption
    codec: str = Field(default="vp8", sa_column=Column(String(8), nullable=False, server_default="vp8"))  # video: vp8 | h264


class SessionOccurrence(SQLModel, table=True):
    """One time window of a booked session: what admission searches by time.

    What the session holds in that window (link loads, rooms, node legs) is
    not repeated per link: it derives from the session's plan and sites and is
    memoised per `rev` (rooms/store/held.py). One narrow row per occurrence
    keeps a booking's commit to a few pages. Clustered on (start, session_id)
    (WITHOUT ROWID on SQLite): the window search is one range scan.
    """

    __tablename__ = "session_occurrence"
    __table_args__ = ({"sqlite_with_rowid": False},)
    start: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    session_id: str = Field(primary_key=True, max_length=40)
    end: int = Field(sa_column=Column(BigInteger, nullable=False))
    rev: int = Field(sa_column=Column(BigInteger, nullable=False))  # the session's revision when written


class UserRow(SQLModel, table=True):
    __tablename__ = "user"
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100, unique=True)
    role: str = Field(max_length=20)
    site_id: Optional[str] = Field(default=None, max_length=100)
    permissions: str = Field(default="", max_length=200)  # space-separated grants beyond the role: "emergency"
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    email: Optional[str] = Field(default=None, max_length=254)  # where their invites go; None: none sent


class AppSecret(SQLModel, table=True):
    """Secrets every control-plane instance must share (e.g. the join-token key)."""

    __tablename__ = "app_secret"
    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=200)


class MediaNodeRow(SQLModel, table=True):
    """A media node process that registered with the control plane (heartbeats refresh last_seen)."""

    __tablename__ = "media_node"
    id: str = Field(primary_key=True, max_length=100)
    url: str = Field(max_length=300)  # its HTTP base, e.g. http://10.1.2.3:9000
    last_seen: int = Field(sa_column=Column(BigInteger, nullable=False))
    load_json: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))  # its last heartbeat's load
    # Liveness (rooms/node_liveness.py): its beats' interval statistics, its last beat in ms, judged down since.
    last_seen_ms: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    interval_mean_s: Optional[float] = Field(default=None, sa_column=Column(Float, nullable=True))
    interval_var_s2: Optional[float] = Field(default=None, sa_column=Column(Float, nullable=True))
    down_since: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class SipAccountRow(SQLModel, table=True):
    """A SIP account, bound to a site. Only digest HA1 values are kept, never the password."""

    __tablename__ = "sip_account"
    username: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(max_length=100)
    realm: str = Field(max_length=100)
    ha1_md5: str = Field(max_length=32)
    ha1_sha256: str = Field(max_length=64)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class SipBindingRow(SQLModel, table=True):
    """A registered contact of an account (RFC 3261 §10.3)."""

    __tablename__ = "sip_binding"
    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, index=True)
    contact: str = Field(max_length=500)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    call_id: str = Field(max_length=200)
    cseq: int


class CallRecordRow(SQLModel, table=True):
    """Every leg (browser, phone, node-to-node): who, which site and session, when, how it ended, how it sounded."""

    __tablename__ = "call_record"
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str = Field(max_length=200, index=True)
    direction: str = Field(max_length=8)  # in | out
    caller: str = Field(max_length=200)
    account: Optional[str] = Field(default=None, max_length=64)
    site_id: Optional[str] = Field(default=None, max_length=100)
    session_id: Optional[str] = Field(default=None, max_length=40, index=True)
    started_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    answered_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    ended_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    result_code: Optional[int] = None
    end_reason: Optional[str] = Field(default=None, max_length=40)
    kind: str = Field(default="sip", max_length=8)  # sip | webrtc | trunk
    node: Optional[str] = Field(default=None, max_length=100)  # the media node that carried it
    leg_id: Optional[str] = Field(default=None, max_length=120, unique=True)  # the node's id: written once
    user_id: Optional[str] = Field(default=None, max_length=40)
    avg_mos: Optional[float] = None
    worst_mos: Optional[float] = None
    avg_loss_pct: Optional[float] = None
    worst_loss_pct: Optional[float] = None
    avg_video: Optional[float] = None
    worst_video: Optional[float] = None
    avg_kbps_in: Optional[float] = None
    avg_kbps_out: Optional[float] = None


class AlarmRow(SQLModel, table=True):
    """One alarm from raised to cleared, and who acknowledged it."""

    __tablename__ = "alarm"
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    subject: str = Field(max_length=200)
    session_id: Optional[str] = Field(default=None, max_length=40)
    site_id: Optional[str] = Field(default=None, max_length=100)
    link_id: Optional[str] = Field(default=None, max_length=100)
    node_id: Optional[str] = Field(default=None, max_length=100)
    value: Optional[float] = None
    threshold: Optional[float] = None
    message: str = Field(sa_column=Column(Text, nullable=False))
    raised_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    cleared_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    acked_by: Optional[str] = Field(default=None, max_length=100)
    acked_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class QualityMinuteRow(SQLModel, table=True):
    """One leg's quality over one minute: what the 15-minute history in memory leaves behind."""

    __tablename__ = "quality_minute"
    session_id: str = Field(primary_key=True, max_length=40)
    node: str = Field(primary_key=True, max_length=100)
    site: str = Field(primary_key=True, max_length=200)
    minute: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=8)
    samples: int
    kbps_in: float
    kbps_out: float
    loss_avg: Optional[float] = None
    loss_max: Optional[float] = None
    jitter_avg: Optional[float] = None
    jitter_max: Optional[float] = None
    rtt_avg: Optional[float] = None
    mos_avg: Optional[float] = None
    mos_min: Optional[float] = None
    video_avg: Optional[float] = None
    video_min: Optional[float] = None
    freezes: int = 0


class WebSessionRow(SQLModel, table=True):
    """A browser's signed-in session (cookie); only a SHA-256 of the cookie value is kept."""

    __tablename__ = "web_session"
    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=40)
    token_id: Optional[str] = Field(default=None, max_length=40)  # the personal token it signed in with
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class ApiTokenRow(SQLModel, table=True):
    """A personal bearer token: only its SHA-256 is kept; it expires, records its last use, can be revoked."""

    __tablename__ = "api_token"
    id: str = Field(primary_key=True, max_length=40)
    user_id: str = Field(max_length=40, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    label: str = Field(max_length=100)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_used_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class FeedTokenRow(SQLModel, table=True):
    """A token that reads one user's calendar feed and nothing else; revocable on its own."""

    __tablename__ = "feed_token"
    id: str = Field(primary_key=True, max_length=40)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: str = Field(max_length=40)
    scope: str = Field(max_length=20)  # calendar
    label: str = Field(max_length=100)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class SipNonceUseRow(SQLModel, table=True):
    """A digest (nonce, nonce-count) already accepted: the same again is a replay (RFC 7616 §3.3)."""

    __tablename__ = "sip_nonce_use"
    nonce: str = Field(max_length=100, primary_key=True)
    nc: str = Field(max_length=16, primary_key=True)
    request_id: str = Field(max_length=32)  # the request that used it: its retransmissions are not replays
    used_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))


class PreemptionRow(SQLModel, table=True):
    """One thing pre-emption took or gave back: which session, on which link, by which emergency."""

    __tablename__ = "preemption"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    emergency_id: str = Field(max_length=40, index=True)  # the session that took it (or gave it back by ending)
    session_id: str = Field(max_length=40, index=True)  # the session that lost or got back
    link: str = Field(max_length=100)
    direction: str = Field(max_length=4)
    kind: str = Field(max_length=10)  # degrade | drop | restore | limit (the emergency's own sites)
    step: str = Field(max_length=20)  # what the sites behind the link get now: as booked, speaker, audio, dropped
    from_kbps: int
    to_kbps: int
    sites: str = Field(sa_column=Column(Text, nullable=False))  # the sites behind the link, space-separated
