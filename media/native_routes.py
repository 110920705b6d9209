"""What Python hands media.native about a connection: the routes, named.

The C reads each route by position (PyArg_ParseTuple); a NamedTuple is a tuple, so these pass as
they are, and the fields have names on the Python side. media.native exports the field names it
reads, in its order (SEND_ROUTE, RECEIVE_ROUTE): tests/media/test_native_constants.py compares
them with these. Importable without media.native: the Python path (aiortc_hooks.DirectSend) reads
the same SendRoute.
"""
from __future__ import annotations

from typing import Any, NamedTuple


class SendRoute(NamedTuple):
    """Where an Output protects and sends a sender's packets (aiortc_hooks.native_route builds it):
    media/native_output.c's take_route."""
    dtls: Any  # aiortc's RTCDtlsTransport (its _state and _tx_srtp are read per packet)
    connected: Any  # its State.CONNECTED: compared with dtls._state
    protocol: Any  # the nominated ICE pair's protocol (a test may wrap its transport)
    transport: Any  # that protocol's own asyncio transport (closing: the route is dropped)
    fd: int  # its socket's descriptor (the C keeps a dup of it), -1 for none
    family: int  # socket.AF_INET or AF_INET6
    remote: tuple[str, int] | None  # (host, port), or None for a connected socket
    session: Any  # the pylibsrtp.Session aiortc keyed
    srtp: int  # its srtp_t, as an address
    protect: int  # libsrtp's srtp_protect, as an address (aiortc_hooks.libsrtp_functions)
    sender_vars: dict[str, Any]  # vars(sender): its RTCP sender-report counters, kept in place
    counter_keys: tuple[str, str, str, str]  # (packets, octets, RTP timestamp, NTP timestamp) keys in it


class ReceiveRoute(NamedTuple):
    """How a Demux unprotects a DTLS transport's SRTP (aiortc_hooks._native_receive_route builds it):
    media/native_input.c's Demux_init."""
    dtls: Any  # aiortc's RTCDtlsTransport
    connected: Any  # its State.CONNECTED
    session: Any  # the receiving pylibsrtp.Session aiortc keyed
    srtp: int  # its srtp_t, as an address
    unprotect: int  # libsrtp's srtp_unprotect, as an address
    dtls_vars: dict[str, Any]  # vars(dtls): its received bytes and packets, counted in place
    counter_keys: tuple[str, str]  # (bytes, packets) keys in it
