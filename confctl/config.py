"""Service settings, with the defaults `confctl serve` uses."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import platformdirs

from confctl.invite_mail import SmtpConfig
from media.port_range import PortRange

DB_ENV = "CONFCTL_DB"


def default_db_url() -> str:
    """The one database every command and `make run` use without --db or $CONFCTL_DB: a file in the user's
    data directory (on Linux $XDG_DATA_HOME/confctl, else ~/.local/share/confctl), whatever directory they
    run from (a relative var/ made a new, empty database in each)."""
    return f"sqlite:///{platformdirs.user_data_path('confctl') / 'confctl.db'}"


def chosen_db(given: str | None, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The database a command uses and why: --db, else $CONFCTL_DB, else the user's default."""
    environ = os.environ if environ is None else environ
    if given:
        return given, "--db"
    if environ.get(DB_ENV, "").strip():
        return environ[DB_ENV].strip(), f"${DB_ENV}"
    return default_db_url(), "the default: the user's data directory"


@dataclass(frozen=True)
class Settings:
    db_url: str = field(default_factory=default_db_url)
    # Loaded if the database has none. No default: only `make run` brings the demo network
    # (`confctl serve` refuses an empty database without --topology).
    topology_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    db_threads: int = 8  # writes
    read_threads: int = 4  # auth and reads, never behind a long write
    db_lock_wait_s: float = 5.0  # then 503 with Retry-After, not a hang
    horizon_days: int = 7
    join_margin_s: int = 15 * 60  # legs are admitted this long before the start and after the end
    recordings_dir: Path = Path("var/recordings")
    sip_port: int | None = None  # UDP port of the SIP service; None: no SIP (confctl serve defaults to 5060)
    sip_host: str = "127.0.0.1"
    # The address phones reach us at, for SDP and Contact; None: sip_host, or when that is
    # 0.0.0.0, the address of the interface that routes to each phone.
    sip_advertise: str | None = None
    sip_rtp_timeout_s: float = 30.0  # a call whose phone sends no RTP this long is hung up (BYE)
    sip_watch_s: float = 2.0  # how often live calls are checked against their session
    # Digest algorithms offered, first preferred. MD5 alone by default: baresip 1.0 (libre) and many deployed
    # phones give up when any challenge names an algorithm they lack; ("SHA-256", "MD5") per RFC 8760 otherwise.
    sip_digest: tuple[str, ...] = ("MD5",)
    # Processes that read the SIP socket and answer REGISTER/OPTIONS (the rest comes back to this one);
    # 0: this process reads it alone.
    sip_workers: int = 0
    recording_retention_days: int = 30
    # Operators (monitoring/): how often every leg is sampled, the alarm thresholds and webhooks
    # (a YAML file, monitoring/alarm_config.py; None: the defaults, no webhooks), and how long records stay.
    quality_sample_s: float = 3.0
    alarms_file: Path | None = None
    call_record_retention_days: int = 400  # a year of call records and the month after, for audits
    alarm_retention_days: int = 90  # cleared alarms
    quality_retention_days: int = 31  # per-minute quality aggregates
    web_session_hours: int = 12  # a browser's sign-in lasts a working day
    # Deployment on the province's network (docs/deploy.md). The URL browsers reach us at when a proxy
    # terminates TLS (confctl/public_origin.py); None: the request's own.
    public_url: str | None = None
    # Which control plane this is, among several on one database (`confctl serve` sets cp-HOST-PORT): its
    # partial recordings and its SIP gateway's link to a session's root node carry it. None: the only one.
    instance_id: str | None = None
    # The in-process media node's ICE: the only address its candidates carry, and the UDP range its
    # sockets bind in (media/aiortc_hooks.py); the SIP gateway's RTP range. None: any.
    ice_advertise: str | None = None
    ice_ports: PortRange | None = None
    rtp_ports: PortRange | None = None
    # Hold each site's camera to its reserved video rate (media/policing.py): off by default until the
    # check runs in the C fast path, since a policed camera is forwarded by the Python path (~several
    # times the CPU per packet, scripts/bench/forwarding.py). `--police-sources` turns it on.
    police_sources: bool = False
    # Invites by e-mail (confctl/invites.py): the relay (`--smtp URL`; None: nothing is mailed) and the waits
    # between a failed try and the next (then the mail is given up, logged and counted in /metrics).
    smtp: SmtpConfig | None = None
    smtp_retry_delays_s: tuple[float, ...] = (2.0, 10.0, 60.0)
