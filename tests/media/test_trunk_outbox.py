"""A trunk's outbox: the root's order reaches the child even when levels filled the queue."""
from __future__ import annotations

import asyncio

from media.cascade_link import RemoteBranch
from media.contracts.trunk import wire
from media.program import SessionRanking
from media.trunk_outbox import TrunkOutbox
from rooms.ids import NodeId, SiteId

JL, CC = SiteId("jl"), SiteId("cc-nongan")


async def drain(outbox: TrunkOutbox) -> list[dict]:
    out = []
    while len(outbox):
        out.append(await asyncio.wait_for(outbox.next(), 1))
    return out


def ranking(*sites: SiteId) -> SessionRanking:
    return SessionRanking(tuple(sites), tuple(sites))


async def test_an_order_sent_while_the_queue_is_full_still_reaches_the_child():
    outbox = TrunkOutbox(max_queued=2)
    branch = RemoteBranch(NodeId("node-cc"), None, lambda m: outbox.send(wire(m)), lambda: JL)  # type: ignore[arg-type]
    for n in range(2):
        outbox.send({"type": "levels", "levels": [[str(CC), n]]})
    outbox.send({"type": "levels", "levels": []})  # over the bound: dropped, counted
    branch.order(ranking(JL, CC), [JL, None, None], [CC, None, None])
    sent = await drain(outbox)
    assert [m["type"] for m in sent] == ["levels", "levels", "order"] and outbox.dropped == 1
    assert sent[-1]["ranking"]["video"] == ["jl", "cc-nongan"]
    branch.order(ranking(JL, CC), [JL, None, None], [CC, None, None])  # unchanged: the child has it
    assert len(outbox) == 0


async def test_a_newer_order_replaces_an_unsent_one_and_follows_the_answer():
    outbox = TrunkOutbox()
    branch = RemoteBranch(NodeId("node-cc"), None, lambda m: outbox.send(wire(m)), lambda: JL)  # type: ignore[arg-type]
    outbox.send({"type": "answer", "sdp": "v=0"})
    branch.order(ranking(JL, CC), [JL, None, None], [CC, None, None])
    branch.order(ranking(CC, JL), [JL, None, None], [CC, None, None])
    sent = await drain(outbox)
    assert [m["type"] for m in sent] == ["answer", "order"]
    assert sent[1]["ranking"]["video"] == ["cc-nongan", "jl"]


async def test_the_writer_waits_for_a_message_and_wakes_on_one():
    outbox = TrunkOutbox()
    waiting = asyncio.create_task(outbox.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    outbox.send({"type": "present", "sites": ["jl"]})
    assert (await asyncio.wait_for(waiting, 1))["sites"] == ["jl"]
