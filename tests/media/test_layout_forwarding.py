"""A site whose plan gives it the speaker only receives one video from its node, not two: what its
link reserved is what crosses it (real aiortc peers through /ws)."""
from __future__ import annotations

from datetime import datetime, timedelta

from tests.media.peers import until
from tests.media.test_signalling import TZ, client  # noqa: F401  (client: fixture)
from tests.test_monitoring import join_talking


async def test_a_speaker_only_site_receives_one_video_while_the_others_receive_two(client):  # noqa: F811
    start = datetime.now(TZ)
    r = await client.post("/api/sessions", headers=client.h, json={
        "title": "Layouts", "host_site": "jl", "sites": ["sp", "cc-nongan"], "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(), "profile": "sd", "layouts": {"cc-nongan": "speaker"}})
    assert r.status == 201, await r.text()
    s = await r.json()
    assert s["media_plan"]["layouts"] == {"cc-nongan": "speaker"}
    nongan_down = next(l for l in s["media_plan"]["links"] if l["link"] == "cc-nongan")["down_kbps"]
    assert nongan_down == 920  # 1 video + 1 audio reserved, not 1760
    peers, sockets = {}, []
    try:
        await join_talking(client, s, ("jl", "sp", "cc-nongan"), peers, sockets)
        await until(lambda: len(peers["sp"].frames) == 2 and all(n > 30 for n in peers["sp"].frames.values()),
                    timeout=30, what="Siping receiving two videos")
        await until(lambda: peers["cc-nongan"].frames.get(0, 0) > 30, timeout=30, what="Nong'an receiving the speaker")
        siping_second = peers["sp"].frames[1]
        # while Siping decodes 30 more frames of its second video, Nong'an's second slot gets none
        await until(lambda: peers["sp"].frames[1] > siping_second + 30, timeout=30, what="Siping's second video")
        assert peers["cc-nongan"].frames.get(1, 0) == 0
    finally:
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()
