"""Media nodes as operators and node processes meet them: registration checked, every node listed."""
from __future__ import annotations



async def test_a_node_registers_only_with_a_topology_id_and_an_id_in_use_is_refused(api):
    r = await api.post("/api/media-nodes", json={"id": "node-atlantis", "url": "http://127.0.0.1:9001"},
                       headers=api.h("nora"))
    assert r.status == 422 and (await r.json())["error"] == "unknown_node"
    ok = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9001"}, headers=api.h("nora"))
    assert ok.status == 200 and len((await ok.json())["grant_key"]) == 64
    again = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9001"},
                           headers=api.h("nora"))
    assert again.status == 200  # the same process's heartbeat
    other = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9002"},
                           headers=api.h("nora"))
    assert other.status == 409 and (await other.json())["error"] == "node_id_in_use"
    bad = await api.post("/api/media-nodes", json={"id": "node-cc", "url": "http://127.0.0.1:9001"},
                         headers={"Authorization": "Bearer cct_" + "x" * 43})
    assert bad.status == 401


async def test_every_node_is_listed_in_process_ones_too(api):
    nodes = (await (await api.get("/api/media-nodes", headers=api.h("opal"))).json())["nodes"]
    in_process = {n["id"]: n for n in nodes if n["in_process"]}
    assert {"node-jl", "node-cc", "node-sp"} <= set(in_process)
    assert in_process["node-cc"]["site"] == "cc" and in_process["node-cc"]["legs"] == 0
