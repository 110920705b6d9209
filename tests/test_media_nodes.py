"""Media nodes as operators and node processes meet them: registration checked, every node listed."""
from __future__ import annotations



async def test_a_node_registers_only_with_a_topology_id_and_an_id_in_use_is_refused(api):
    r = await api.post("/api/media-nodes", json={"id": "node-atlantis", "url": "http://127.0.0.1:9001"},
                       headers=api.h("ada"))
    assert r.status == 422 and (await r.json())["error"] == "unknown_node"
    ok = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9001"},
                        headers=api.h("node-cc"))
    assert ok.status == 200 and len((await ok.json())["grant_key"]) == 64
    again = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9001"},
                           headers=api.h("node-cc"))
    assert again.status == 200  # the same process's heartbeat
    other = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9002"},
                           headers=api.h("node-cc"))
    assert other.status == 409 and (await other.json())["error"] == "node_id_in_use"
    bad = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9001"},
                         headers={"Authorization": "Bearer cct_" + "x" * 43})
    assert bad.status == 401


async def test_every_node_is_listed_in_process_ones_too(api):
    nodes = (await (await api.get("/api/media-nodes", headers=api.h("opal"))).json())["nodes"]
    in_process = {n["id"]: n for n in nodes if n["in_process"]}
    assert {"node-jl", "node-cc", "node-sp"} <= set(in_process)
    assert in_process["node-cc"]["site"] == "cc" and in_process["node-cc"]["legs"] == 0


def test_a_dead_prefecture_node_sends_its_sites_to_the_root_and_the_extra_load_is_reported():
    from confctl.placement import effective_placement, fallback_cost
    from rooms.ids import PlanKind
    from rooms.plan import media_plan
    from rooms.topology import demo_topology
    topo = demo_topology()
    sites = ["jl", "cc-nongan", "cc-yushu", "sp-lishu"]
    plan = media_plan(topo, topo.profile("hd720"), PlanKind.CASCADE, sites)
    session = {"profile": "hd720", "plan": "cascade", "media_plan": plan.to_dict(topo)}
    every = {"node-jl", "node-cc", "node-sp"}
    assert effective_placement(plan.attachments, "node-jl", every, True).attachments == plan.attachments
    where = effective_placement(plan.attachments, "node-jl", every - {"node-cc"}, True)
    assert where.down == ("node-cc",) and not where.in_process
    assert where.attachments == {"jl": "node-jl", "cc-nongan": "node-jl", "cc-yushu": "node-jl", "sp-lishu": "node-sp"}
    cost = {(c["link"], c["direction"]): c for c in fallback_cost(topo, session, where)}
    # Both Changchun counties now get their own program down the cc link instead of one shared one.
    assert set(cost) == {("cc", "down"), ("cc", "up")}
    assert cost[("cc", "down")]["fallback_kbps"] > cost[("cc", "down")]["booked_kbps"] > 0
    # The root down: a surviving node of the plan becomes the root (the one with most sites; then by id),
    # never the control plane's own node while node processes run.
    moved = effective_placement(plan.attachments, "node-jl", every - {"node-jl"}, True)
    assert not moved.in_process and moved.root == "node-cc" and moved.down == ("node-jl",)
    assert moved.attachments == {"jl": "node-cc", "cc-nongan": "node-cc", "cc-yushu": "node-cc", "sp-lishu": "node-sp"}
    # Every node process down: then only the control plane's own node is left.
    last = effective_placement(plan.attachments, "node-jl", set(), True)
    assert last.in_process and set(last.attachments.values()) == {"node-jl"}
    # A prefecture's own meeting runs on its node alone, even with the province node down.
    local = media_plan(topo, topo.profile("hd720"), PlanKind.CASCADE, ["cc", "cc-nongan", "cc-yushu"])
    alone = effective_placement(local.attachments, "node-jl", {"node-cc"}, True)
    assert alone.root == "node-cc" and not alone.in_process and alone.down == ()
    # No node processes at all: every node in-process, the plan as booked.
    assert effective_placement(plan.attachments, "node-jl", set(), False).attachments == plan.attachments
