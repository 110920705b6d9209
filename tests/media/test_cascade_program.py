"""Every site's program from one session ranking: what crosses a cascade link fits what the plan reserves."""
from __future__ import annotations

import random

import pytest

from media.cascade import trunk_crossings
from media.program import program_for, session_ranking
from rooms.ids import Direction, PlanKind
from rooms.plan import Layout, media_plan
from rooms.topology import demo_topology

T = demo_topology()
VIDEO_SITES = [s for s in T.sites if s not in T.links or T.links[s].rate_kbps > 2000]


def test_the_speaker_sees_the_host_and_the_previous_speaker():
    present = ["jl", "cc", "sp", "ly"]
    # ly spoke before sp: sp (the speaker) sees the host and ly, whoever joined last
    assert program_for("sp", "jl", present, "sp", ["ly"]).video == ("jl", "ly")
    assert program_for("sp", "jl", present, "sp", ["ly"]).audio == "ly"
    assert program_for("cc", "jl", present, "sp", ["ly"]).audio == "sp"


@pytest.mark.parametrize("seed", range(200))
def test_what_crosses_each_cascade_link_fits_its_reservation(seed):
    rng = random.Random(seed)
    sites = rng.sample(VIDEO_SITES, rng.randint(2, 9))
    host = sites[0]
    profile = T.profile("hd720")
    # some sites take less (the speaker only, audio only): trunks must carry only what they reserve
    layouts = {s: rng.choice([Layout.SPEAKER, Layout.AUDIO]) for s in sites if rng.random() < 0.3}
    plan = media_plan(T, profile, PlanKind.CASCADE, sites, layouts=layouts)
    present = [s for s in rng.sample(sites, len(sites)) if rng.random() < 0.85]  # join order, some absent
    speaker = rng.choice(present + [None]) if present else None
    earlier = rng.sample(present, min(len(present), rng.randint(0, 3)))
    ranking = session_ranking(host, present, speaker, earlier)
    reserved = {(l.link, l.direction): l.kbps for l in plan.loads}
    for node_id, node in T.nodes.items():
        if node.site == T.root:
            continue
        below = {s for s, n in plan.attachments.items() if n == node_id}
        if not below:
            continue
        down, up = trunk_crossings(ranking, present, below, {s: l.value for s, l in layouts.items()})
        link = node.site  # a prefecture node's trunk crosses the prefecture's uplink
        for direction, crossing in ((Direction.DOWN, down), (Direction.UP, up)):
            kbps = len(crossing.video) * profile.video_stream_kbps + len(crossing.audio) * profile.audio_stream_kbps
            assert len(crossing.video) <= 2 and len(crossing.audio) <= 1
            assert kbps <= reserved.get((link, direction), 0), (node_id, direction, crossing, present, speaker)
