import pytest

from rooms.topology import TopologyError, demo_topology, load_topology_file, parse_topology


def test_demo_topology_loads_with_its_stated_rates():
    t = demo_topology()
    assert len(t.sites) == 78 and t.root == "jl"
    assert t.links["cc"].rate_kbps == 155_000 and t.links["cc-nongan"].rate_kbps == 10_000
    assert t.links["cc-nongan"].limit_kbps == 7_500  # 75 % admitted by default
    assert [r.id for r in t.sites["cc-nongan"].rooms] == ["main", "emergency"]  # default_rooms of its level
    assert t.path("cc-nongan") == ("cc-nongan", "cc")
    assert t.cascade_node("cc-nongan") == "node-cc" and t.cascade_node("dept-police") == "node-jl"


def _doc(*sites):
    return {"default_rooms": {"x": [{"id": "main"}]}, "sites": [dict(level="x", **s) for s in sites]}


@pytest.mark.parametrize("sites, expected", [
    ([{"id": "a"}, {"id": "b"}], "exactly one root"),
    ([{"id": "a"}, {"id": "b", "parent": "zz", "uplink_mbps": 10}], "site b: parent zz does not exist"),
    ([{"id": "a"}, {"id": "b", "parent": "c", "uplink_mbps": 1}, {"id": "c", "parent": "b", "uplink_mbps": 1}],
     "cycle"),
    ([{"id": "a"}, {"id": "a", "parent": "a", "uplink_mbps": 1}], "site a: id used twice"),
    ([{"id": "a"}, {"id": "b", "parent": "a", "uplink_mbps": 0}], "site b: uplink_mbps: Input should be greater than 0"),
    ([{"id": "a"}, {"id": "b", "parent": "a", "uplink_mbps": -5}], "site b: uplink_mbps: Input should be greater than 0"),
    ([{"id": "a"}, {"id": "b", "parent": "a"}], "site b: needs uplink_mbps"),
    ([{"id": "a"}, {"id": "b", "parent": "a", "uplink_mbps": 10, "admitted_share": 1.5}], "site b: admitted_share: Input should be less than or equal to 1"),
])
def test_invalid_topologies_name_the_site_and_problem(sites, expected):
    with pytest.raises(TopologyError) as err:
        parse_topology(_doc(*sites))
    assert any(expected in p for p in err.value.problems), err.value.problems


def test_every_problem_is_reported_at_once():
    with pytest.raises(TopologyError) as err:
        parse_topology(_doc({"id": "a"}, {"id": "b", "parent": "zz", "uplink_mbps": 1},
                            {"id": "c", "parent": "a", "uplink_mbps": -1}))
    assert len(err.value.problems) == 2


def test_per_link_share_and_profiles_are_configuration():
    t = parse_topology({
        "profiles": [{"name": "uhd", "video_kbps": 15000}, {"name": "voice", "video_kbps": 0, "audio_kbps": 64}],
        "sites": [{"id": "a", "rooms": [{"id": "m"}]},
                  {"id": "b", "parent": "a", "uplink_mbps": 10, "admitted_share": 0.5, "rooms": [{"id": "m"}]}],
    })
    assert t.links["b"].limit_kbps == 5000
    assert [p.name for p in t.profiles] == ["uhd", "voice"] and t.profile("uhd").video_stream_kbps == 15750


def test_unreadable_and_non_yaml_files_are_reported(tmp_path):
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [unclosed")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology_file(bad)
