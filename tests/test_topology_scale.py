"""A topology of tens of thousands of sites is judged in linear time, off the event loop.

The audit's case: a 2,000-site parent chain (108 KB) blocked the whole API for 145 s before its 422,
because the cycle check walked every chain again (O(n^3)) on the event loop. Here 20,000 sites, as a
loop, as a chain too deep, and as a real (wide) tree, each answered within a second while
/api/health keeps answering.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from rooms.topology import MAX_DEPTH, TopologyError, parse_topology, tree_problems

N = 20_000
# The behaviour asked for: refused or accepted promptly (unloaded 0.15-0.2 s; the cubic check took 145 s).
# 2.5 s is the margin a loaded 2-core CI machine needs: 1 s was missed at 1.01-1.6 s with other suites running.
DEADLINE_S = 2.5
# The longest /api/health may go unanswered meanwhile. Unloaded, a PUT takes 0.15-0.2 s and health
# answers at least every 0.05 s (the worker thread's turns at the GIL); on a 2-core machine other
# suites share, gaps up to ~0.55 s were seen. Blocking the loop for the validation, as before, fails
# the count below as well: no health answer completes while the PUT is in flight.
HEALTH_GAP_S = 0.75


# A regression to O(n^2) or worse fails here, instead of holding the suite for hours (pytest-timeout's
# signal interrupts even a loop that never yields: the old check ran on the event loop itself).
pytestmark = pytest.mark.timeout(30, method="signal")


def _id(i: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        i, r = divmod(i, 36)
        out = digits[r] + out
        if i == 0:
            return "s" + out


def chain(n: int, loop: bool) -> dict:
    """s0 -> s1 -> ... -> s(n-1): a loop back to s0 (no root), or rooted at s(n-1) (far too deep)."""
    sites = [{"id": _id(i), "parent": _id(i + 1), "uplink_mbps": 10} for i in range(n - 1)]
    sites.append({"id": _id(n - 1), "parent": _id(0), "uplink_mbps": 10} if loop else {"id": _id(n - 1)})
    return {"network": "chain", "default_rooms": {"": [{"id": "m"}]}, "sites": sites}


def wide(n: int, per: int = 100) -> dict:
    """A province, prefectures of `per` counties each: n sites in all, three levels."""
    sites: list[dict] = [{"id": "root"}]
    while len(sites) < n:
        prefecture = _id(len(sites))
        sites.append({"id": prefecture, "parent": "root", "uplink_mbps": 1000})
        for _ in range(min(per, n - len(sites))):
            sites.append({"id": _id(len(sites)), "parent": prefecture, "uplink_mbps": 10})
    return {"network": "wide", "default_rooms": {"": [{"id": "m"}]}, "sites": sites}


def _parse(doc: dict) -> tuple[float, list[str] | None]:
    t = time.perf_counter()
    try:
        parse_topology(doc)
        problems = None
    except TopologyError as exc:
        problems = exc.problems
    return time.perf_counter() - t, problems


def test_a_20000_site_loop_is_refused_in_linear_time_and_reported_once():
    took, problems = _parse(chain(N, loop=True))
    assert problems is not None and took < DEADLINE_S, took
    cycles = [p for p in problems if "cycle" in p]
    assert len(cycles) == 1 and f"({N} sites)" in cycles[0] and len(cycles[0]) < 500, cycles


def test_a_20000_site_chain_is_refused_as_too_deep_and_a_20000_site_tree_accepted():
    took, problems = _parse(chain(N, loop=False))
    assert problems is not None and took < DEADLINE_S, took
    assert len(problems) == 1 and f"more than {MAX_DEPTH} levels" in problems[0] and len(problems[0]) < 500
    took, problems = _parse(wide(N))
    assert problems is None and took < DEADLINE_S, took


def test_a_problem_in_each_of_20000_sites_is_summarised():
    doc = {"default_rooms": {"": [{"id": "m"}]}, "sites": [{"id": "root"}] + [
        {"id": _id(i), "parent": "root"} for i in range(N)]}  # every one without uplink_mbps
    took, problems = _parse(doc)
    assert took < DEADLINE_S and len(problems) == 101 and problems[-1] == f"... and {N - 100} more problems"


def test_the_time_grows_linearly_not_cubically():
    small_doc, large_doc = chain(2_000, loop=True), chain(20_000, loop=True)
    small = min(_parse(small_doc)[0] for _ in range(3))  # the best of three: other suites share the machine
    large = min(_parse(large_doc)[0] for _ in range(3))
    assert large < max(small, 0.002) * 40, (small, large)  # 10x the sites: ~10x; O(n^2) 100x, O(n^3) 1000x


class _Site:
    def __init__(self, id: str, parent: str | None):
        self.id, self.parent = id, parent


def _tree(parents: dict[str, str | None]) -> dict:
    return {k: _Site(k, v) for k, v in parents.items()}


def test_tree_problems_finds_each_loop_once_however_it_is_entered():
    # two loops, each with a tail leading into it, and a healthy branch
    sites = _tree({"r": None, "a": "r", "x": "y", "y": "z", "z": "x", "t1": "x", "t2": "t1",
                   "u": "v", "v": "u", "w": "u"})
    problems = tree_problems(sites)
    assert len(problems) == 2, problems
    assert any("x -> y -> z -> x" in p for p in problems) and any("u -> v -> u" in p for p in problems)


def test_tree_problems_allows_max_depth_and_refuses_one_more():
    ok = {"s0": None, **{f"s{i}": f"s{i - 1}" for i in range(1, MAX_DEPTH + 1)}}
    assert tree_problems(_tree(ok)) == []
    deep = {**ok, f"s{MAX_DEPTH + 1}": f"s{MAX_DEPTH}"}
    (problem,) = tree_problems(_tree(deep))
    assert problem.startswith(f"site s{MAX_DEPTH + 1}: more than {MAX_DEPTH} levels")


@pytest.mark.parametrize("shape", ["loop", "chain", "tree"])
async def test_a_20000_site_put_is_answered_within_a_second_while_health_keeps_answering(api, shape):
    doc = {"loop": lambda: chain(N, loop=True), "chain": lambda: chain(N, loop=False), "tree": lambda: wide(N)}[shape]()
    body = json.dumps(doc, separators=(",", ":"))
    assert len(body) < 1_000_000  # under the body limit: judged on its content, not refused for size
    answered: list[float] = []  # when each /api/health answer arrived
    done = asyncio.Event()

    async def poll_health() -> None:
        answered.append(time.perf_counter())
        while not done.is_set():
            r = await api.get("/api/health")
            assert r.status == 200
            await r.read()
            answered.append(time.perf_counter())
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll_health())
    await asyncio.sleep(0.05)
    t = time.perf_counter()
    r = await api.put("/api/topology", data=body, headers={**api.h("ada"), "Content-Type": "application/json"})
    answer = await r.json()
    t_end = time.perf_counter()
    took = t_end - t
    done.set()
    await poller
    gaps = [b - a for a, b in zip(answered, answered[1:])]
    during = [a for a in answered if t < a < t_end]
    if shape == "tree":
        assert r.status == 200 and answer["sites"] == N, answer
    else:
        assert r.status == 422 and answer["error"] == "invalid_topology", str(answer)[:500]
        assert len(json.dumps(answer)) < 5_000  # the problems are summarised, not 20,000 ids
    assert took < DEADLINE_S, f"{shape}: answered in {took:.2f} s"
    assert len(during) >= 2 and max(gaps) < HEALTH_GAP_S, (shape, f"PUT {took:.2f} s", f"longest health gap "
                                                           f"{max(gaps):.2f} s", f"{len(during)} answers meanwhile")
