"""Invites as e-mail (iMIP, RFC 6047): which messages a booking, change or cancel sends, and where the SMTP
relay is. Pure: confctl/invite_sender.py sends them.

Each site with a topology `contact` gets its own invite with its own join link only (a link is that
site's credential); the organizer, when they have an address, gets the whole session without links.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from confctl.invite_calendar import InviteFacts, invite_ics, method_of
from rooms.email_address import EmailError, normalized_email

SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
USER_ENV, PASSWORD_ENV = "CONFCTL_SMTP_USER", "CONFCTL_SMTP_PASSWORD"


class SmtpUrlError(ValueError):
    pass


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str  # "plain", "starttls" (required, not opportunistic) or "tls" (implicit, smtps)
    sender: str  # the From address
    username: str | None = None
    password: str | None = None

    def shown(self) -> str:
        """For logs and the status route: never the password."""
        who = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = {"plain": "smtp", "starttls": "smtp+starttls", "tls": "smtps"}[self.security]
        return f"{scheme}://{who}{host}:{self.port}"


def parse_smtp_url(url: str, env: Mapping[str, str], default_sender: str | None = None) -> SmtpConfig:
    """`smtp://HOST[:PORT]` (no TLS: a relay on this host or a trusted LAN), `smtp+starttls://` (STARTTLS
    required, port 587) or `smtps://` (TLS from the start, port 465); `USER@` in the URL or CONFCTL_SMTP_USER,
    the password only from CONFCTL_SMTP_PASSWORD (a command line is visible to every local user);
    `?from=ADDR` the From address (default confctl@ this host's name)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise SmtpUrlError(f"--smtp {url!r}: the scheme is one of {', '.join(s + '://' for s in SCHEMES)}")
    if parts.password is not None:
        raise SmtpUrlError(f"--smtp: put the password in ${PASSWORD_ENV}, not in the URL (ps shows it)")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise SmtpUrlError(f"--smtp {url!r}: the port is a number from 1 to 65535") from None
    if not host:
        raise SmtpUrlError(f"--smtp {url!r}: give the relay's host, e.g. smtp://mail.jl.example:25")
    if parts.path not in ("", "/"):
        raise SmtpUrlError(f"--smtp {url!r}: no path after the host")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"from"}
    if unknown:
        raise SmtpUrlError(f"--smtp: unknown option(s) {sorted(unknown)}; the only one is ?from=ADDR")
    security, default_port = SCHEMES[parts.scheme]
    sender = query["from"][-1] if "from" in query else (default_sender or f"confctl@{socket.getfqdn()}")
    try:
        sender = normalized_email(sender)
    except EmailError as exc:
        raise SmtpUrlError(f"--smtp ?from=: {exc}" if "from" in query else
                           f"--smtp: this host's name gives no usable From address ({exc}); add ?from=ADDR") from None
    username = unquote(parts.username) if parts.username else env.get(USER_ENV) or None
    password = env.get(PASSWORD_ENV) or None
    if password and not username:
        raise SmtpUrlError(f"${PASSWORD_ENV} is set but no user: give smtp://USER@HOST or ${USER_ENV}")
    return SmtpConfig(host, port or default_port, security, sender, username, password)


def sip_domain(sip_port: int | None, sip_host: str, sip_advertise: str | None, public_url: str | None) -> str | None:
    """Where phones reach the SIP gateway, as a SIP URI's host[:port]: the advertised address, else the bound
    host, else (bound to every interface) the host browsers reach; None when SIP is off."""
    if sip_port is None:
        return None
    host = sip_advertise or (sip_host if sip_host not in ("0.0.0.0", "::", "") else None)
    if host is None and public_url:
        host = urlsplit(public_url).hostname
    if not host:
        return None
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name
    return host if sip_port == 5060 else f"{host}:{sip_port}"


@dataclass(frozen=True)
class OutgoingInvite:
    to: str
    site: str | None  # None: the organizer's whole-session copy
    message: EmailMessage


def compose_invites(session: dict[str, Any], facts: InviteFacts, sender: str,
                    removed: tuple[dict[str, Any], ...] = ()) -> list[OutgoingInvite]:
    """The messages one booking, change or cancel sends: each site with a contact its own invite (its link
    only), the organizer the whole session (no link). Sites a change took out (`removed`, the earlier
    session's entries) get a CANCEL naming only them."""
    out: list[OutgoingInvite] = []
    for s in [x["site"] for x in session["sites"]]:
        if facts.contacts.get(s):
            out.append(OutgoingInvite(facts.contacts[s], s, _message(session, facts, sender, facts.contacts[s], s)))
    for entry in removed:
        s = entry["site"]
        if facts.contacts.get(s):
            gone = {**session, "status": "cancelled", "sites": [entry], "host_site": session["host_site"]}
            out.append(OutgoingInvite(facts.contacts[s], s, _message(gone, facts, sender, facts.contacts[s], s)))
    if facts.organizer_email:
        out.append(OutgoingInvite(facts.organizer_email, None,
                                  _message(session, facts, sender, facts.organizer_email, None)))
    return out


def _message(session: dict[str, Any], facts: InviteFacts, sender: str, to: str, site: str | None) -> EmailMessage:
    method = method_of(session)
    ics = invite_ics(session, facts, site)
    start = session["start"]
    verb = "Cancelled" if method == "CANCEL" else "Updated invitation" if session.get("sequence", 0) else "Invitation"
    msg = EmailMessage()
    msg["Subject"] = f"{verb}: {session['title']} ({start[:16].replace('T', ' ')} {start[19:] or 'UTC'})"
    msg["From"] = sender
    msg["To"] = to
    if facts.organizer_email and site is not None:
        msg["Reply-To"] = facts.organizer_email  # a site's question goes to the person who booked
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    whom = facts.names.get(site, site) if site else "the organizer"
    text = [f"{session['title']}: {verb.lower()} for {whom}.", ""]
    link = facts.join_urls.get(site) if site and method == "REQUEST" else None
    if link:
        text += [f"Join at the start from this site's room: {link}",
                 "This link lets its holder in as this site: do not forward it.", ""]
    text.append("The calendar invite is attached (accept it to add the session to your calendar).")
    msg.set_content("\n".join(text))
    # iMIP: the invite as the text/calendar alternative a mail client turns into Accept/Decline
    msg.add_alternative(ics, maintype="text", subtype="calendar", params={"method": method})
    msg.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return msg
