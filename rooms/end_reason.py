"""Why a leg or a call ended: one vocabulary for the one column it is stored in (call_record.end_reason),
whether a browser's WebRTC leg ended (media/room.py) or a phone's SIP call (sip_stub/call_policy.py)."""
from __future__ import annotations

import enum


class EndReason(str, enum.Enum):
    # -- a site's WebRTC leg --------------------------------------------------------------------------
    LEFT = "left"  # the page said it leaves
    DISCONNECTED = "disconnected"  # its signalling connection ended without a word
    REPLACED = "replaced"  # the site joined again from another connection
    CONNECTION_FAILED = "connection_failed"  # ICE/DTLS failed
    CLOSED = "closed"  # a trunk between nodes closed
    BAD_OFFER = "bad_offer"
    SESSION_CLOSED = "session_closed"  # the node closed the session's room
    ENDED_BY_ADMIN = "ended_by_admin"
    HUNG_UP = "hung_up"  # a phone's leg in the room ended (its call's own reason is on the call's record)
    PREEMPTED = "preempted"  # an emergency needed the site's link (rooms/preemption.py)
    NO_MEDIA_PORTS = "no_media_ports"  # every port of the node's --ice-ports range was in use
    # -- a phone's SIP call ---------------------------------------------------------------------------
    BYE = "bye"  # the phone hung up
    CANCELLED = "cancelled"  # CANCEL before the answer
    REFUSED = "refused"
    NO_ANSWER = "no_answer"  # a dial-out the phone never answered
    NOT_ACCEPTABLE = "not_acceptable"  # its answer's SDP offered nothing we can use
    ERROR = "error"
    SESSION_ENDED = "session_ended"  # the booked window ended
    SESSION_CANCELLED = "session_cancelled"
    SITE_REMOVED = "site_removed"
    RTP_TIMEOUT = "rtp_timeout"
    SESSION_TIMER = "session_timer"
    NO_ACK = "no_ack"
    SHUTDOWN = "shutdown"
