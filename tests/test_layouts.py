"""Per-site layouts on thin links: a site may receive the speaker only or audio only, and the plan,
its reservation and `confctl capacity` follow."""
from __future__ import annotations

from rooms.capacity import capacity
from rooms.ids import Direction, LinkId, PlanKind, SiteId
from rooms.plan import Layout, media_plan
from rooms.topology import demo_topology


def test_a_speaker_only_or_audio_only_site_receives_less_and_its_link_carries_less():
    topo = demo_topology()
    sd = topo.profile("sd")
    sites = [SiteId("jl"), SiteId("cc"), SiteId("cc-mobile"), SiteId("sp")]
    down = lambda layout: media_plan(topo, sd, PlanKind.CASCADE, sites,  # noqa: E731
                                     layouts={SiteId("cc-mobile"): layout}).load(LinkId("cc-mobile"), Direction.DOWN)
    assert (down(Layout.FULL), down(Layout.SPEAKER), down(Layout.AUDIO)) == (1760, 920, 80)
    up = media_plan(topo, sd, PlanKind.CASCADE, sites, layouts={SiteId("cc-mobile"): Layout.AUDIO})
    assert up.load(LinkId("cc-mobile"), Direction.UP) == 920  # it still sends its picture


def test_between_nodes_a_link_carries_the_most_any_site_beyond_it_takes():
    topo = demo_topology()
    sd = topo.profile("sd")
    sites = [SiteId("jl"), SiteId("sp"), SiteId("cc-mobile"), SiteId("cc-nongan")]
    trunk = lambda layouts: media_plan(topo, sd, PlanKind.CASCADE, sites, layouts=layouts).load(  # noqa: E731
        LinkId("cc"), Direction.DOWN)
    both_thin = {SiteId("cc-mobile"): Layout.SPEAKER, SiteId("cc-nongan"): Layout.SPEAKER}
    assert trunk(both_thin) == 920  # Changchun's node needs one video for its two speaker-only sites
    assert trunk({SiteId("cc-mobile"): Layout.SPEAKER}) == 1760  # Nong'an still takes the full program


def test_capacity_shows_mobile_links_carrying_a_speaker_only_sd_layout():
    rows = [r for r in capacity(demo_topology(), ["sd"], [PlanKind.CASCADE]) if r.level == "mobile"]
    assert [(r.layout, r.sessions, r.down_kbps) for r in rows] == [("full", 0, 1760), ("speaker", 1, 920)]
