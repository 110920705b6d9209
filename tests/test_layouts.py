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


def test_a_site_receives_only_what_its_layout_includes():
    from media.program import Program, within_layout
    p = Program((SiteId("jl"), SiteId("sp")), SiteId("sp"))  # host and speaker; the speaker is heard
    assert within_layout(p, None) == p and within_layout(p, "full") == p
    assert within_layout(p, "speaker") == Program((SiteId("sp"), None), SiteId("sp"))
    assert within_layout(p, "audio") == Program((None, None), SiteId("sp"))


def test_thin_link_layouts_step_down_only_the_sites_behind_a_link_the_session_alone_overloads():
    from rooms.plan import thin_link_layouts
    topo = demo_topology()
    sites = [SiteId("jl"), SiteId("cc"), SiteId("jl-vehicle"), SiteId("cc-nongan")]
    assert thin_link_layouts(topo, topo.profile("sd"), PlanKind.CASCADE, sites) == {SiteId("jl-vehicle"): Layout.SPEAKER}
    # HD720: only audio fits down the vehicle's link; its own 2180 kbit/s picture still overloads the uplink,
    # which no layout changes, so admission refuses it as before
    hd = thin_link_layouts(topo, topo.profile("hd720"), PlanKind.CASCADE, sites)
    assert hd == {SiteId("jl-vehicle"): Layout.AUDIO}
    plan = media_plan(topo, topo.profile("hd720"), PlanKind.CASCADE, sites, layouts=hd)
    assert plan.load(LinkId("jl-vehicle"), Direction.UP) == 2180 > topo.links[LinkId("jl-vehicle")].limit_kbps
