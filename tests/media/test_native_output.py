"""The node's outgoing packets in C (media/native_output.c) where Python can change things under it: a
socket asyncio closed (its number given to another connection), routes changed or cleared by the Python
the C calls, one output failing among many, arguments that are not what they should be, objects made
without __init__, and the libsrtp functions it calls by address (issue 22)."""
from __future__ import annotations

import asyncio
import os
import socket
import time
import types
from typing import Any

import pylibsrtp
import pytest
from pylibsrtp._binding import ffi, lib

from media import aiortc_hooks, native
from media.native import Output, fan_out
from media.native_routes import ReceiveRoute, SendRoute
from media.rtp_output import Negotiated

COUNTERS = ("packets", "octets", "rtp_ts", "ntp_ts")


def tx_session() -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))


def route(session: pylibsrtp.Session, protocol: Any, transport: Any, fd: int, family: int, addr: Any,
          dtls: Any = None, keys: Any = COUNTERS, counters: dict | None = None) -> SendRoute:
    """A route as aiortc_hooks.native_route builds it, around test objects."""
    dtls = dtls if dtls is not None else types.SimpleNamespace(_state="connected", _tx_srtp=session)
    counters = counters if counters is not None else dict.fromkeys(COUNTERS, 0)
    protect = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    return SendRoute(dtls=dtls, connected="connected", protocol=protocol, transport=transport, fd=fd, family=family,
                     remote=addr, session=session, srtp=int(ffi.cast("uintptr_t", session._srtp[0])), protect=protect,
                     sender_vars=counters, counter_keys=keys)


def audio_output() -> Output:
    out = Output("audio", Negotiated(5, 111, "opus"))
    out.switched(0.0)
    return out


def received(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    got = []
    while True:
        try:
            got.append(sock.recv(4096))
        except BlockingIOError:
            return got


def descriptor_taking(number: int, keep: list[socket.socket]) -> socket.socket:
    """A new TCP socket whose descriptor is `number` (the lowest free one, as the kernel hands them out)."""
    for _ in range(64):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if s.fileno() == number:
            return s
        keep.append(s)
    raise AssertionError(f"descriptor {number} was not handed out again")


def tcp_pair(client: socket.socket) -> tuple[socket.socket, socket.socket]:
    """`client` connected to a fresh listener: (client, the accepted server side)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return client, server


class _Protocol(asyncio.DatagramProtocol):  # as aioice's: it keeps its transport
    def connection_made(self, transport: Any) -> None:
        self.transport = transport


async def test_an_output_whose_socket_was_closed_writes_nothing_to_the_descriptors_next_owner():
    """asyncio closes a leg's ICE socket and the kernel gives its number to a new TCP connection: the
    output sends nothing into that connection (nor anywhere), the Python path neither, and the route is
    found again only for an open socket (issue 22, 1)."""
    loop = asyncio.get_running_loop()
    viewer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    viewer.bind(("127.0.0.1", 0))
    transport, protocol = await loop.create_datagram_endpoint(_Protocol, local_addr=("127.0.0.1", 0))
    session = tx_session()
    from aiortc.rtcdtlstransport import State
    dtls = types.SimpleNamespace(_state=State.CONNECTED, _tx_srtp=session, transport=types.SimpleNamespace(
        _connection=types.SimpleNamespace(_nominated={1: types.SimpleNamespace(
            protocol=protocol, remote_addr=viewer.getsockname())})))
    sender = types.SimpleNamespace(transport=dtls, **dict.fromkeys(aiortc_hooks._SENDER_COUNTERS, 0))
    out = audio_output()
    out.set_router(lambda: aiortc_hooks.native_route(sender))
    direct = aiortc_hooks.DirectSend(sender)
    fan_out((out,), 1, 960, False, b"opus", None)
    assert direct(b"\x80\x6f\x00\x02" + bytes(8) + b"opus", 4, 960)
    assert len(received(viewer)) == 2  # both paths send while the socket is open

    number = transport.get_extra_info("socket").fileno()
    transport.close()
    deadline = time.monotonic() + 5
    while transport._sock is not None:  # asyncio closes the socket on the loop's next pass
        assert time.monotonic() < deadline
        await asyncio.sleep(0)
    keep: list[socket.socket] = []
    client, server = tcp_pair(descriptor_taking(number, keep))
    try:
        for seq in range(2, 12):
            fan_out((out,), seq, 960 * seq, False, b"opus", None)
        assert received(server) == [] and received(viewer) == []
        assert out.frames_forwarded == 1
        assert direct(b"\x80\x6f\x00\x03" + bytes(8) + b"opus", 4, 1920) is False
        assert received(server) == [] and received(viewer) == []
        assert aiortc_hooks.native_route(sender) is None  # no route to a closed socket
    finally:
        for s in (client, server, viewer, *keep):
            s.close()


def test_a_route_keeps_its_own_descriptor_when_the_socket_is_closed_under_it():
    """Even if nothing tells the output its socket closed (the transport still looks open), what it
    sends goes out on that socket - the route holds its own descriptor - never into the connection
    that was given the old number (issue 22, 1)."""
    node = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    node.bind(("127.0.0.1", 0))
    viewer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    viewer.bind(("127.0.0.1", 0))
    transport = types.SimpleNamespace(_closing=False)
    protocol = types.SimpleNamespace(transport=transport)
    session = tx_session()
    out = audio_output()
    the_route = route(session, protocol, transport, node.fileno(), int(socket.AF_INET), viewer.getsockname())
    out.set_router(lambda: the_route)
    fan_out((out,), 1, 960, False, b"opus", None)
    number = node.fileno()
    node.close()  # under the output: its number is free again
    keep: list[socket.socket] = []
    client, server = tcp_pair(descriptor_taking(number, keep))
    try:
        fan_out((out,), 2, 1920, False, b"opus", None)
        assert received(server) == []
        assert len(received(viewer)) == 2 and out.frames_forwarded == 2
        out.set_router(None)  # the route, and its descriptor, are let go
        fan_out((out,), 3, 2880, False, b"opus", None)
        assert received(viewer) == [] and received(server) == []
    finally:
        for s in (client, server, viewer, *keep):
            s.close()


def test_the_route_is_checked_again_after_every_call_into_python():
    """Attribute reads and a wrapped transport run Python, which may clear or replace the output's
    route mid-packet: the C then neither touches what was cleared nor sends on a route it did not check
    (issue 22, 4)."""
    node, viewer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    session = tx_session()
    own = types.SimpleNamespace(_closing=False)
    out = audio_output()

    class ClearingDtls:  # reading its state clears the route, as a callback could
        _tx_srtp = session

        @property
        def _state(self) -> str:
            out.set_router(None)
            return "connected"

    out.set_router(lambda: route(session, types.SimpleNamespace(transport=own), own, node.fileno(),
                                 int(socket.AF_UNIX), None, dtls=ClearingDtls()))
    fan_out((out,), 1, 960, False, b"opus", None)
    assert received(viewer) == [] and out.frames_forwarded == 0

    sent: list[bytes] = []

    def sendto(data: bytes, addr: Any) -> None:  # a test's wrapped transport: it clears the route as it sends
        sent.append(data)
        out.set_router(None)

    counters = dict.fromkeys(COUNTERS, 0)
    wrapped = types.SimpleNamespace(sendto=sendto)
    out.set_router(lambda: route(session, types.SimpleNamespace(transport=wrapped), own, node.fileno(),
                                 int(socket.AF_UNIX), None, counters=counters))
    fan_out((out,), 2, 1920, False, b"opus", None)
    assert len(sent) == 1 and counters["packets"] == 1 and counters["rtp_ts"] == out.last_ts
    fan_out((out,), 3, 2880, False, b"opus", None)  # no router any more: nothing
    assert len(sent) == 1

    for keys in (("packets",), ("packets", "octets", "rtp_ts", "ntp_ts", "more"), "pocr", None):
        out.set_router(lambda keys=keys: route(session, types.SimpleNamespace(transport=own), own, node.fileno(),
                                               int(socket.AF_UNIX), None, keys=keys))
        with pytest.raises((TypeError, ValueError)):
            fan_out((out,), 4, 3840, False, b"opus", None)
    out.set_router(lambda: route(session, types.SimpleNamespace(transport=own), own, node.fileno(),
                                 int(socket.AF_UNIX), None, counters=[]))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fan_out((out,), 5, 4800, False, b"opus", None)
    assert received(viewer) == []
    node.close()
    viewer.close()


def test_one_outputs_error_does_not_keep_the_packet_from_the_others():
    """Three receivers of one source; the second one's route raises: the first and third still get
    the packet, and the error is raised once they have (issue 22, 7)."""
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(3)]
    outs = tuple(audio_output() for _ in pairs)
    own = types.SimpleNamespace(_closing=False)
    for (node, _), out in zip(pairs, outs):  # each leg its own SRTP session, as each leg has
        out.set_router(lambda node=node, session=tx_session(): route(
            session, types.SimpleNamespace(transport=own), own, node.fileno(), int(socket.AF_UNIX), None))

    def broken() -> Any:
        raise RuntimeError("route lookup failed")

    outs[1].set_router(broken)
    with pytest.raises(RuntimeError, match="route lookup failed"):
        fan_out(outs, 1, 960, False, b"opus", None)
    assert [len(received(viewer)) for _, viewer in pairs] == [1, 0, 1]
    assert [o.frames_forwarded for o in outs] == [1, 0, 1]
    for node, viewer in pairs:
        node.close()
        viewer.close()


def test_objects_made_without_init_refuse_every_method():
    """`type.__new__(T)` skips __init__: every method then raises, nothing dereferences an empty field
    (issue 22, 7)."""
    out = Output.__new__(Output)
    assert out.kind is None and out.n is None and out.packets == 0
    for call in (lambda: out.packet(1, 2, False, b"x"), lambda: out.retransmission(1),
                 lambda: out.send_retransmission(1), lambda: out.switched(0.0), lambda: out.wants_keyframe(1.0),
                 lambda: out.set_router(None)):
        with pytest.raises(ValueError, match="__init__"):
            call()
    with pytest.raises(TypeError):
        fan_out((out,), 1, 2, False, b"x", None)

    demux = native.Demux.__new__(native.Demux)
    with pytest.raises(ValueError, match="__init__"):
        demux.read_ready(0, types.SimpleNamespace(_conn_lost=0), None)
    with pytest.raises(ValueError, match="__init__"):
        demux.add(native.Stream.__new__(native.Stream))
    assert demux.packets == 0 and demux.streams == ()
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=os.urandom(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    ready = native.Demux(ReceiveRoute(dtls=object(), connected="connected", session=rx,
                                      srtp=int(ffi.cast("uintptr_t", rx._srtp[0])),
                                      unprotect=int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
                                      dtls_vars={}, counter_keys=("b", "p")),
                         lambda data, now: None)
    with pytest.raises(ValueError, match="__init__"):
        ready.add(native.Stream.__new__(native.Stream))  # a stream with no receiver, source or statistics

    fresh, made = native.RemoteBitrateEstimator(), native.RemoteBitrateEstimator.__new__(native.RemoteBitrateEstimator)
    for i in range(300):  # one without __init__ starts from the same state
        args = dict(arrival_time_ms=10_000 + 33 * i, abs_send_time=(i * 8738) & 0xFFFFFF, payload_size=1100, ssrc=7)
        assert made.add(**args) == fresh.add(**args), i
    stats = native.StreamStatistics.__new__(native.StreamStatistics)
    stats.add(types.SimpleNamespace(sequence_number=1, timestamp=2), 1.0)
    assert stats.packets_received == 1
    nack = native.NackGenerator.__new__(native.NackGenerator)
    assert nack.add(types.SimpleNamespace(sequence_number=1, timestamp=2)) is False and nack.missing == set()


def test_a_bad_argument_raises_its_own_error_and_no_python_runs_after_it():
    """An argument that fails to convert stops the call there: its own TypeError, and no later
    argument's Python (here a __bool__) is run with that error pending (issue 22, 7)."""
    touched: list[str] = []

    class Flag:
        def __bool__(self) -> bool:
            touched.append("bool")
            return True

    with pytest.raises(TypeError):
        fan_out((), "not a number", 0, Flag(), b"", None)
    out = Output("video", Negotiated(1, 96, "VP8"))
    with pytest.raises(TypeError):
        out.packet(1, 2, False, b"\x90\x80\x80\x01\x00", desc=("not an offset", Flag()))
    with pytest.raises(TypeError):
        Output("audio", Negotiated("not an ssrc", 111, "opus", mid=Flag()))  # type: ignore[arg-type]
    assert touched == []


def test_lengths_and_offsets_from_python_are_not_truncated():
    """A picture ID offset or sequence number too large for a C int, and payloads past the longest
    packet, are refused or treated as absent - never cut to a small number (issue 22, 7)."""
    out = Output("video", Negotiated(1, 96, "VP8"))
    out.switched(0.0)
    key = bytes([0x90, 0x80, 0x80, 0x07, 0x00]) + b"frame"
    for pic in (2**31 - 1, 2**31, 2**32 + 2, 2**63, 2**70, -1):
        data = out.packet(1, 0, True, key, desc=(pic, True))
        assert data is not None and data[12:] == key  # no picture ID where the offset is outside the payload
    assert out.retransmission(2**32 + out.last_seq) is None and out.retransmission(-1) is None
    packets = out.packets
    with pytest.raises(ValueError, match="too long"):
        out.packet(2, 0, True, bytes(1489))
    import mmap
    huge = mmap.mmap(-1, 2**32 + 5, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # never touched
    huge[:5] = key[:5]
    with pytest.raises(ValueError, match="too long"):
        out.packet(3, 0, True, huge)  # 4 GiB and 5 bytes: not a 5-byte packet
    assert fan_out((out,), 4, 0, True, huge, None) is None
    assert out.packets == packets
    huge.close()


def test_libsrtp_is_called_only_through_functions_of_the_signature_the_c_was_built_for():
    """Routes are built with srtp_protect's and srtp_unprotect's addresses only once both are checked
    against media/native.h's srtp_fn, and pylibsrtp is pinned where that was checked (issue 22, 6)."""
    protect, unprotect = aiortc_hooks.libsrtp_functions()
    assert (protect, unprotect) == (int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
                                    int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))))
    assert ffi.typeof(lib.srtp_unprotect).cname == aiortc_hooks.SRTP_FN_SIGNATURE

    class Moved:  # a binding whose srtp_unprotect takes something else
        def __init__(self, name: str):
            self.name = name

        def typeof(self, fn: Any) -> Any:
            cname = ffi.typeof(fn).cname
            return types.SimpleNamespace(cname=cname.replace("int *", "unsigned int *") if fn is getattr(
                lib, self.name) else cname)

        def __getattr__(self, attr: str) -> Any:
            return getattr(ffi, attr)

    for name in ("srtp_protect", "srtp_unprotect"):
        with pytest.raises(aiortc_hooks.AiortcInternalsMoved, match=name):
            aiortc_hooks.check_libsrtp(Moved(name), lib)
    with pytest.raises(aiortc_hooks.AiortcInternalsMoved):
        aiortc_hooks.check_libsrtp(ffi, types.SimpleNamespace(srtp_protect=lib.srtp_protect))

    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (pin,) = [Requirement(d) for d in project["project"]["dependencies"] if d.startswith("pylibsrtp")]
    assert pin.specifier and version("pylibsrtp") in pin.specifier


def test_asyncio_transports_have_what_the_c_reads():
    """native_output.c reads an asyncio transport's `_closing` (set by close()) by name."""
    async def main() -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        assert transport._closing is False
        transport.close()
        assert transport._closing is True and transport.is_closing()
    asyncio.run(main())
