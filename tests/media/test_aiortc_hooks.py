"""Fails loudly when aiortc's internals that media/aiortc_hooks.py relies on move."""
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender

from media import aiortc_hooks


async def test_the_internals_the_hooks_use_are_where_we_expect():
    aiortc_hooks.check_aiortc()
    pc = RTCPeerConnection()
    t = pc.addTransceiver("video")
    for attr in (aiortc_hooks._QUEUE_ATTR, aiortc_hooks._THREAD_ATTR, aiortc_hooks._SSRC_ATTR,
                 aiortc_hooks._STREAMS_ATTR, aiortc_hooks._RTX_ATTR, aiortc_hooks._CODECS_ATTR,
                 aiortc_hooks._ESTIMATOR_ATTR, aiortc_hooks._NACK_ATTR, aiortc_hooks._RTCP_SSRC_ATTR):
        assert hasattr(t.receiver, attr), attr
    # the forward-only receive path reads these too
    assert callable(t.receiver._send_rtcp_nack) and callable(t.receiver._send_rtcp) and hasattr(t.receiver, "_enabled")
    dtls = t.receiver.transport
    assert hasattr(dtls._rtp_header_extensions_map, aiortc_hooks._EXT_IDS_ATTR)
    assert isinstance(dtls._rtp_router.ssrc_table, dict)
    # media/native*.c reads these by name, and calls libsrtp through pylibsrtp's own binding
    for attr in ("_state", "_tx_srtp", "_rx_srtp", aiortc_hooks._RX_BYTES, aiortc_hooks._RX_PACKETS):
        assert hasattr(dtls, attr), attr
    import pylibsrtp
    from pylibsrtp._binding import ffi, lib
    assert ffi.typeof(lib.srtp_protect).cname == "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
    assert hasattr(pylibsrtp.Session(), "_srtp") and lib.srtp_unprotect
    for attr in (aiortc_hooks._PACKETS, aiortc_hooks._OCTETS, aiortc_hooks._RTP_TS, aiortc_hooks._NTP_TS):
        assert hasattr(t.sender, attr), attr  # RTP-level forwarding keeps the sender's report counters
    assert callable(t.sender._retransmit) and hasattr(t.sender, "_ssrc") and hasattr(t.sender, "_rtx_ssrc")
    assert callable(getattr(RTCRtpSender, "_send_keyframe")) and callable(getattr(RTCRtpReceiver, "_send_rtcp_pli"))
    assert hasattr(t.sender, aiortc_hooks._SENDER_STARTED) and not aiortc_hooks.sender_started(t.sender)
    assert callable(getattr(pc, "_RTCPeerConnection__localRtp"))
    tap = aiortc_hooks.tap_receiver(t.receiver, lambda c, f: None)
    assert getattr(t.receiver, aiortc_hooks._QUEUE_ATTR) is tap
    await pc.close()


async def test_the_ice_and_asyncio_internals_the_hooks_use_are_where_we_expect():
    """On a connected leg: aiortc_hooks.native_route and receive_directly read aioice's nominated pair
    (`_connection._nominated`, by component) and its sockets (`_connection._protocols`); DirectSend, the
    socket readers and media/native*.c read asyncio's datagram transport (`_sock`, `_sock_fd`, `_loop`,
    `_protocol`, `_conn_lost`, `_closing`) and replace its reader (`loop._add_reader`, `_remove_reader`);
    media/forwarding.py writes with the sender's SSRC (`sender._ssrc`, `_rtx_ssrc`)."""
    import asyncio
    import re
    import socket

    import aioice

    from tests.media.peers import until
    a, b = RTCPeerConnection(), RTCPeerConnection()
    try:
        sender = a.addTransceiver("video", direction="sendrecv").sender
        await a.setLocalDescription(await a.createOffer())
        # the SSRCs forwarding writes are the ones the offer announced (RFC 4588's FID group: media, RTX)
        fid = re.search(r"a=ssrc-group:FID (\d+) (\d+)", a.localDescription.sdp)
        assert fid is not None and (sender._ssrc, sender._rtx_ssrc) == (int(fid[1]), int(fid[2]))
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await until(lambda: a.connectionState == "connected", what="the leg connected")

        connection = sender.transport.transport._connection  # RTCDtlsTransport -> RTCIceTransport -> aioice
        assert isinstance(connection, aioice.Connection)
        pair = connection._nominated.get(1)  # component 1: RTP (bundled, rtcp-mux)
        assert pair is not None and pair.protocol in connection._protocols
        host, port = pair.remote_addr[:2]
        assert isinstance(host, str) and isinstance(port, int)
        transport, loop = pair.protocol.transport, asyncio.get_running_loop()
        assert transport._loop is loop and transport._protocol is pair.protocol
        assert transport._sock_fd == transport._sock.fileno() >= 0
        assert transport._conn_lost == 0 and transport._closing is False
        assert aiortc_hooks.native_route(sender) is not None  # built from all of the above

        # the reader is replaced as the hooks replace it, and the loop calls the new one
        got: list[bytes] = []
        fd = transport._sock_fd
        loop._remove_reader(fd)
        loop._add_reader(fd, lambda: got.append(transport._sock.recv(2048)))
        with socket.socket(transport._sock.family, socket.SOCK_DGRAM) as probe:
            probe.sendto(b"\x00probe", transport._sock.getsockname())
            await until(lambda: got == [b"\x00probe"], what="the replaced reader called")
        transport.close()
        assert transport._closing is True
    finally:
        await a.close()
        await b.close()


async def test_a_started_receiver_cannot_be_tapped():
    pc = RTCPeerConnection()
    t = pc.addTransceiver("video")
    setattr(t.receiver, aiortc_hooks._THREAD_ATTR, object())  # as if receive() had started the decoder
    with pytest.raises(RuntimeError, match="before the receiver starts"):
        aiortc_hooks.tap_receiver(t.receiver, lambda c, f: None)
    setattr(t.receiver, aiortc_hooks._THREAD_ATTR, None)
    await pc.close()


def test_the_fast_clock_gives_aiortcs_own_values():
    from aiortc import clock
    aiortc_hooks.install_fast_clock()
    # aiortc's own definitions, from the datetime they are built on
    now = clock.current_datetime()
    ntp, ms = clock.datetime_to_ntp(now), int((now - clock.NTP_EPOCH).total_seconds() * 1000)
    fast_ntp, fast_ms = clock.current_ntp_time(), clock.current_ms()
    assert clock.current_ntp_time is aiortc_hooks._fast_ntp_time  # every aiortc module calls through clock.*
    assert abs(fast_ntp - ntp) < (1 << 32) // 100  # within 10 ms (two clock reads apart)
    assert abs(fast_ms - ms) < 10
    assert abs(clock.datetime_from_ntp(fast_ntp) - clock.current_datetime()).total_seconds() < 0.01


async def test_loss_and_jitter_come_from_the_media_stream_not_its_retransmissions():
    """aiortc's getStats lists a receiver's streams under one id, so the RTX stream's figures would
    replace the media stream's; inbound_streams reads each SSRC and leaves RTX out."""
    from aiortc.rtcrtpreceiver import StreamStatistics
    from aiortc.rtp import RtpPacket
    pc = RTCPeerConnection()
    t = pc.addTransceiver("video")
    media, rtx = StreamStatistics(90000), StreamStatistics(90000)
    for seq in (1, 2, 4, 5):  # 3 lost
        media.add(RtpPacket(sequence_number=seq, timestamp=seq * 3000, ssrc=111))
    rtx.add(RtpPacket(sequence_number=9, timestamp=9000, ssrc=222))
    getattr(t.receiver, aiortc_hooks._STREAMS_ATTR).update({111: media, 222: rtx})
    getattr(t.receiver, aiortc_hooks._RTX_ATTR)[222] = 111
    (stream,) = aiortc_hooks.inbound_streams(pc)
    assert (stream["ssrc"], stream["packets_received"], stream["packets_lost"]) == (111, 4, 1)
    await pc.close()
