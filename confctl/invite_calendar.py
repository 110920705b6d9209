"""One session as an iCalendar VEVENT (icalendar package, RFC 5545/5546): pure, for the .ics routes and the mailed invites.

ORGANIZER and each ATTENDEE are `mailto:` URIs when an address is known (the organizer's e-mail, a site's
topology `contact`), so a mail client can route the invite and its reply; the confctl ids stay as
X-CONFCTL-USER, X-CONFCTL-SITE and X-CONFCTL-ROOM parameters. Without an address the `urn:confctl:` URI
of before stands: there is nowhere to mail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from icalendar import Calendar, Event, vCalAddress, vText, vUri


@dataclass(frozen=True)
class InviteFacts:
    """What a session's invite needs beyond the session: names and addresses, the links, the SIP dial-in."""
    names: dict[str, str] = field(default_factory=dict)  # site id -> its name
    contacts: dict[str, str] = field(default_factory=dict)  # site id -> its contact address
    organizer_name: str | None = None
    organizer_email: str | None = None
    join_urls: dict[str, str] = field(default_factory=dict)  # site id -> its join link (its credential)
    sip_domain: str | None = None  # host[:port] of the SIP gateway; None: no SIP URI for the dial-in


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(timezone.utc)


def sip_uri(number: str | None, domain: str | None) -> str | None:
    """The dial-in number as a SIP URI at the gateway (RFC 3261 §19.1), for SIP phones and video endpoints."""
    return f"sip:{number}@{domain}" if number and domain else None


def session_event(session: dict[str, Any], facts: InviteFacts, site: str | None = None) -> Event:
    """One session as a VEVENT: the organizer, every site as a room attendee, the dial-in (number and SIP
    URI), and `site`'s join link when a site is given. The whole session's invite carries no link: each
    link is its site's credential, and a whole invite is forwarded. A cancelled session has none."""
    names = facts.names
    live = session["status"] != "cancelled"
    shown = {site: facts.join_urls[site]} if live and site is not None and site in facts.join_urls else {}
    ev = Event()
    ev.add("uid", f"{session['id']}@confctl")
    ev.add("dtstamp", datetime.now(timezone.utc))
    ev.add("sequence", session.get("sequence", 0))
    ev.add("summary", session["title"])
    ev.add("dtstart", _utc(session["start"]))
    ev.add("dtend", _utc(session["end"]))
    # Every occurrence as an RDATE: exact whatever the rule's local-time subtleties.
    for occ in session["occurrences"][1:]:
        ev.add("rdate", _utc(occ["start"]))
    ev.add("organizer", _organizer(session, facts))
    rooms = {s["site"]: s["room"] for s in session["sites"]}
    for s, room in rooms.items():
        ev.add("attendee", _attendee(s, room, session, facts), encode=0)
    dial = session.get("dial_in")
    sip = sip_uri(dial, facts.sip_domain)
    where = site or session["host_site"]
    dial_text = f" · dial-in {dial}" + (f" ({sip})" if sip else "") if dial else ""
    ev.add("location", f"{names.get(where, where)} / {rooms.get(where, '')}{dial_text}")
    if site is not None and site in shown:
        ev.add("url", shown[site])
    if sip:  # RFC 7986: clients that know CONFERENCE offer it as a call button
        ev.add("conference", vUri(sip), parameters={"VALUE": "URI", "FEATURE": "AUDIO", "LABEL": "Dial-in"})
    for s, u in shown.items():
        ev.add("conference", vUri(u), parameters={"VALUE": "URI", "FEATURE": "VIDEO",
                                                  "LABEL": f"Join as {names.get(s, s)}"})
    participants = ", ".join(f"{names.get(s, s)} ({r})" for s, r in rooms.items())
    lines = [f"Host: {names.get(session['host_site'], session['host_site'])}", f"Sites: {participants}",
             f"Profile: {session['profile']}, plan: {session['plan']}{', recorded' if session['record'] else ''}"]
    if dial:
        lines.append(f"Dial-in from a registered phone: {dial}" + (f", or call {sip}" if sip else ""))
    lines += [f"Join as {names.get(s, s)}: {u}" for s, u in shown.items()]
    ev.add("description", "\n".join(lines))
    ev.add("status", "CONFIRMED" if live else "CANCELLED")
    return ev


def _organizer(session: dict[str, Any], facts: InviteFacts) -> vCalAddress:
    uid = session["organizer_id"]
    who = vCalAddress(f"mailto:{facts.organizer_email}" if facts.organizer_email else f"urn:confctl:user:{uid}")
    who.params["cn"] = vText(facts.organizer_name or uid)
    who.params["x-confctl-user"] = vText(uid)
    return who


def _attendee(site: str, room: str, session: dict[str, Any], facts: InviteFacts) -> vCalAddress:
    contact = facts.contacts.get(site)
    attendee = vCalAddress(f"mailto:{contact}" if contact else f"urn:confctl:site:{site}:{room}")
    attendee.params.update({"cn": vText(f"{facts.names.get(site, site)} / {room}"), "cutype": vText("ROOM"),
                            "role": vText("CHAIR" if site == session["host_site"] else "REQ-PARTICIPANT"),
                            "x-confctl-site": vText(site), "x-confctl-room": vText(room)})
    return attendee


def invite_calendar(name: str, method: str | None = None) -> Calendar:
    """An empty VCALENDAR: with METHOD for an invite (RFC 5546), without for a subscribed feed."""
    cal = Calendar()
    cal.add("prodid", "-//confctl//booking//EN")
    cal.add("version", "2.0")
    if method is not None:
        cal.add("method", method)
    cal.add("x-wr-calname", name)
    return cal


def method_of(session: dict[str, Any]) -> str:
    return "CANCEL" if session["status"] == "cancelled" else "REQUEST"


def invite_ics(session: dict[str, Any], facts: InviteFacts, site: str | None = None) -> bytes:
    """One session's invite (one site's, or the whole session's): REQUEST, or CANCEL once cancelled."""
    cal = invite_calendar(session["title"], method_of(session))
    cal.add_component(session_event(session, facts, site))
    return cal.to_ical()
