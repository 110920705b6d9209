"""A phone's audio codecs run on the room's codec thread; what they produce reaches the room on its loop."""
from __future__ import annotations

import asyncio
import audioop
import math
import struct
import threading

from media.forwarding import Source
from media.pcm_leg import CHUNK, CodecThread, PcmLeg, SourceDecoder
from tests.media.peers import until

TONE = struct.pack("<160h", *(int(8000 * math.sin(2 * math.pi * 400 * k / 8000)) for k in range(160)))


async def test_a_phone_is_encoded_in_order_handed_back_on_the_loop_and_decodes_to_its_tone():
    codec = CodecThread("test pcm")
    loop_thread = threading.current_thread()
    try:
        source = Source("audio", lambda: None)
        decoder = SourceDecoder(codec)  # what another phone in the room hears of this one
        arrived: list[tuple[int, threading.Thread]] = []
        source.sinks.append(lambda f: arrived.append((f.pts, threading.current_thread())))
        source.sinks.append(decoder.feed)
        phone = PcmLeg("sp", source, codec)
        levels = [phone.push_pcm(TONE) for _ in range(50)]  # one second of the phone's voice
        assert all(level < 30 for level in levels)  # its level at once, for the speaker election
        await until(lambda: len(arrived) >= 45, what="the phone's Opus frames back on the loop")
        pts = [p for p, _ in arrived]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
        assert {t for _, t in arrived} == {loop_thread}  # forwarding is not thread-safe: never from the codec's
        await until(lambda: len(decoder.chunks) >= 5, what="decoded chunks")
        heard = b"".join(decoder.chunks)
        assert len(heard) % CHUNK == 0 and audioop.rms(heard, 2) > 2000
    finally:
        codec.stop()
        await asyncio.to_thread(codec.join, 5)
    assert not codec.running


async def test_a_codec_thread_that_falls_behind_drops_audio_instead_of_queueing_it():
    codec = CodecThread("test pcm", max_pending=10)
    gate = threading.Event()
    try:
        codec.submit(gate.wait)  # the thread is busy
        ran: list[int] = []
        for n in range(30):
            codec.submit(ran.append, n)
        assert codec.dropped >= 19
        gate.set()
        await until(lambda: len(ran) == 30 - codec.dropped, what="the queued jobs run")
        assert ran == sorted(ran)
    finally:
        gate.set()
        codec.stop()
        await asyncio.to_thread(codec.join, 5)
