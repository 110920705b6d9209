"""Emergency presets: the groups of sites a duty officer opens a session with in one click. Pure.

- `emergency-offices`: the province's emergency command hall with every prefecture's emergency office;
- `mobile-platforms`: the province's hall with every mobile emergency platform (and the vehicle);
- `vehicle`: the province's hall with the satellite command vehicle(s);
- `prefecture:ID`: the province's hall with one prefecture's emergency office and its counties'.
The host is the root site's `emergency` room when it has one.
"""
from __future__ import annotations

from rooms.admission import RequestError
from rooms.ids import SiteId
from rooms.topology import Topology

PRESETS = ("emergency-offices", "mobile-platforms", "vehicle", "prefecture:ID")


def _in(topo: Topology, site: SiteId, room: str) -> str:
    return f"{site}/{room}" if any(r.id == room for r in topo.sites[site].rooms) else str(site)


def preset_sites(topo: Topology, preset: str) -> tuple[str, list[str]]:
    """(host, other sites) as booking strings (site or site/room); RequestError for an unknown preset."""
    root = topo.root
    host = _in(topo, root, "emergency")
    level = lambda lv: [s.id for s in topo.sites.values() if s.level == lv]  # noqa: E731
    if preset == "emergency-offices":
        return host, [_in(topo, s, "emergency") for s in level("prefecture")]
    if preset == "mobile-platforms":
        return host, [str(s) for s in level("mobile")]
    if preset == "vehicle":
        vehicles = [s.id for s in topo.sites.values() if s.level == "mobile" and s.parent == root]
        if not vehicles:
            raise RequestError("unknown_preset", "this network has no vehicle linked to the province")
        return host, [str(s) for s in vehicles]
    if preset.startswith("prefecture:"):
        pid = SiteId(preset.split(":", 1)[1])
        if pid not in topo.sites or topo.sites[pid].level != "prefecture":
            raise RequestError("unknown_preset", f"{pid!r} is not a prefecture of this network")
        counties = [c for c in topo.children[pid] if topo.sites[c].level == "county"]
        return host, [_in(topo, pid, "emergency"), *(_in(topo, c, "emergency") for c in counties)]
    raise RequestError("unknown_preset", f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
