"""The quality pipeline and /metrics: rates and scores from the nodes' counters, scraped by Prometheus's parser."""
from __future__ import annotations

from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from confctl.keys import QUALITY
from media.contracts.node import SESSIONS, SessionFigures
from monitoring.pipeline import QualityPipeline
from tests.media.peers import SitePeer, until
from tests.media.test_signalling import TZ, book, client, next_of, token_of  # noqa: F401  (client: fixture)


def _figures(lost: int, received: int, bytes_in: int, frames: int, freezes: int = 0,
             gone: bool = False) -> list[SessionFigures]:
    legs = [] if gone else [{"site": "cc-nongan", "state": "connected", "bytes_in": {"audio": bytes_in // 10,
            "video": bytes_in}, "bytes_forwarded": 2 * bytes_in, "frames_in": {"video": frames}, "freezes": freezes,
            "packets_lost": lost, "packets_received": received, "jitter_ms": 4.0, "rtt_ms": 20.0,
            "resolution": "1280x720"}]
    return SESSIONS.validate_python([{"session": "ses_1", "node": "in-process", "host": "jl", "legs": legs,
             "trunks": [{"child": "node-cc", "parent": "node-jl", "bytes_up": bytes_in, "bytes_down": bytes_in}]}])


def test_a_sample_is_the_difference_since_the_previous_one_and_scores_move_with_loss():
    q = QualityPipeline()
    assert q.sample(_figures(0, 0, 0, 0), 100.0) == []  # a first look only sets the baseline
    (leg, trunk) = q.sample(_figures(0, 300, 750_000, 90), 103.0)
    assert leg.kbps_in == round(8 * 825_000 / 3 / 1000, 1) and leg.fps == 30.0 and leg.loss_pct == 0
    assert leg.mos > 4.3 and leg.video_score == 5.0 and trunk.kind == "trunk" and trunk.kbps_in == 2000.0
    (lossy, _) = q.sample(_figures(30, 570, 1_500_000, 150, freezes=2), 106.0)
    assert lossy.loss_pct == 10.0 and lossy.freezes == 2
    assert lossy.mos < leg.mos - 1 and lossy.video_score < 3  # 10 % loss and two freezes: poor
    assert len(q.leg_history(("ses_1", "in-process", "cc-nongan"))) == 2
    assert [x.kind for x in q.sample(_figures(30, 570, 1_500_000, 150, gone=True), 109.0)] == ["trunk"]  # leg vanished
    assert ("ses_1", "in-process", "cc-nongan") not in q.latest  # gone from the live view, history kept
    assert len(q.leg_history(("ses_1", "in-process", "cc-nongan"))) == 2


async def join_talking(client, s: dict, sites: tuple[str, ...], peers: dict, sockets: list) -> None:  # noqa: F811
    """Each site joins through /ws as the join page does, with a talking SitePeer (closed by the caller)."""
    for site in sites:
        ws = await client.ws_connect("/ws")
        sockets.append(ws)
        await ws.send_json({"type": "join", "token": token_of(s, site)})
        await next_of(ws, "joined")
        peers[site] = SitePeer(80, talking=True)
        await ws.send_json({"type": "offer", "sdp": await peers[site].offer()})
        await peers[site].accept((await next_of(ws, "answer"))["sdp"])


async def test_metrics_show_live_legs_with_their_quality_to_an_operator_only(client, tmp_path):  # noqa: F811
    s = await book(client, ["jl", "cc-nongan"], datetime.now(TZ))
    peers, sockets = {}, []
    try:
        await join_talking(client, s, ("jl", "cc-nongan"), peers, sockets)
        pipeline = client.app[QUALITY]
        await until(lambda: {k[2] for k, v in pipeline.latest.items() if v.kbps_in > 0 and v.mos} >= {"jl", "cc-nongan"},
                    timeout=30, what="both legs sampled by the quality pipeline")
        r = await client.get("/metrics", headers={"Authorization": f"Bearer {client.operator}"})
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(await r.text())}
        legs = {smp.labels["kind"]: smp.value for smp in families["confctl_live_legs"].samples}
        assert legs["webrtc"] == 2
        mos = {smp.labels["site"]: smp.value for smp in families["confctl_leg_mos"].samples
               if smp.labels["session"] == s["id"]}
        assert set(mos) == {"jl", "cc-nongan"} and all(4.0 < v <= 4.5 for v in mos.values())
        reserved = {(smp.labels["link"], smp.labels["direction"]): smp.value
                    for smp in families["confctl_link_reserved_kbps"].samples}
        booked = {(row["link"], d): row[f"{d}_kbps"] for row in s["media_plan"]["links"] for d in ("up", "down")}
        assert reserved[("cc-nongan", "down")] == booked[("cc-nongan", "down")] > 0  # the booking's reservation, now
        assert families["confctl_bookings"].samples[0].value == 1
        assert "confctl_alarms_open" in families and "confctl_alarms_raised" in families
        assert "confctl_sip_messages" in families
        organizer = await client.get("/metrics", headers=client.h)
        assert organizer.status == 403  # operators and admins only
    finally:
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()


def test_live_link_load_follows_each_leg_and_trunk_along_its_path():
    from monitoring.link_load import live_link_load
    from monitoring.pipeline import LegSample
    from rooms.topology import demo_topology
    samples = [LegSample(0, "s", "node-cc", "cc-nongan", "webrtc", 1000, 2000),
               LegSample(0, "s", "in-process", "node-cc->node-jl", "trunk", 500, 600),
               LegSample(0, "s", "node-jl", "jl", "webrtc", 900, 1800)]
    load = live_link_load(demo_topology(), samples)
    assert load == {("cc-nongan", "up"): 1000, ("cc-nongan", "down"): 2000, ("cc", "up"): 500, ("cc", "down"): 600}


async def test_utilization_shows_live_beside_reserved_on_every_link_of_a_cascade(client):  # noqa: F811
    s = await book(client, ["jl", "cc-nongan"], datetime.now(TZ))  # cascade: Nong'an on node-cc, a trunk to node-jl
    peers, sockets = {}, []
    try:
        await join_talking(client, s, ("jl", "cc-nongan"), peers, sockets)
        op = {"Authorization": f"Bearer {client.operator}"}

        async def both_links_live() -> dict | None:
            rows = {(x["link"], x["direction"]): x for x in (await (await client.get(
                "/api/links/utilization", headers=op)).json())["links"]}
            keys = [("cc-nongan", "down"), ("cc-nongan", "up"), ("cc", "down"), ("cc", "up")]
            return rows if all(rows.get(k, {}).get("live_kbps", 0) > 0 for k in keys) else None
        rows = await until(both_links_live, timeout=30, what="live load on Nong'an's link and on the trunk's")
        for key in (("cc-nongan", "down"), ("cc", "down"), ("cc", "up")):
            row = rows[key]
            print(key, row["live_kbps"], "live of", row["reserved_kbps"], "reserved")
            assert 0 < row["live_kbps"] <= 1.15 * row["reserved_kbps"]  # what crosses fits what was reserved
        assert rows[("cc", "down")]["to"] == "jl" and not rows[("cc", "down")]["live_over_90pct"]
    finally:
        for ws in sockets:
            await ws.close()
        for p in peers.values():
            await p.close()
