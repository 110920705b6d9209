"""Control plane ↔ node and node ↔ node speak only through media/contracts/ (issue 24).

The check is a grep: no field name of the contracts' models (nested ones included) is spelled as a
string literal ("name") in the modules on those paths. A literal there is a second spelling of the
contract, which drifts from it unnoticed. The few words that are also something else in a module
are listed below with the reason; anything new fails here.
"""
from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from media.contracts import node, trunk

ROOT = Path(__file__).resolve().parent.parent

# The modules on the control plane ↔ node and node ↔ node paths; for media/room.py only its figures part.
MODULES = ["media/node_server.py", "media/node.py", "media/room.py", "media/cascade_link.py", "media/cascade_session.py",
           "confctl/node_figures.py", "confctl/node_calls.py", "confctl/live_plans.py", "confctl/api/nodes.py",
           "monitoring/pipeline.py", "monitoring/operations.py"]
ROOM_FIGURES_FROM = "    def figures(self)"  # media/room.py from here on: figures, live_figures and the counters

# Words that are contract fields and also something else in one module, with why.
MEDIA_KINDS = {"audio", "video"}  # a medium's name: a value (track.kind, a Source's key), not the field `audio`
EXCEPTIONS: dict[str, dict[str, str]] = {
    "media/room.py": {
        **{k: "a medium's name, a value (frames_in's keys)" for k in MEDIA_KINDS},
        **{k: "media.aiortc_hooks.inbound_streams' per-SSRC dicts, an in-process shape read in rtcp_figures"
           for k in ("kind", "packets_lost", "packets_received", "jitter_ms")},
        "live": "aiortc's track.readyState value",
    },
    "media/node.py": {},
    "media/cascade_session.py": {
        "layouts": "media.cascade_session.Placement.to_dict, the placement inside a grant (media/grants.py)"},
    "media/cascade_link.py": {},
    "media/node_server.py": {},
    "monitoring/pipeline.py": {k: "a medium's name: a key of frames_in and jitter_ms_by_kind" for k in MEDIA_KINDS},
    "monitoring/operations.py": {
        **{k: "a call_record column (rooms/store/calls.py) or an alarm's context, not a figure"
           for k in ("kind", "node", "session", "site", "id", "link")},
        "type": "the dashboard push's event type (monitoring/dashboard.py)",
    },
    "confctl/live_plans.py": {
        **{k: "the operators' and webhooks' pre-emption event, or a pre-emption record row; not the node call"
           for k in ("type", "session", "kind", "sites", "layouts", "dropped", "id", "link")},
    },
}


def _fields(models: tuple[type[BaseModel], ...]) -> set[str]:
    """Every field name of these models and of the models their fields hold, however deep."""
    seen: set[type[BaseModel]] = set()
    names: set[str] = set()

    def walk(m: type[BaseModel]) -> None:
        if m in seen:
            return
        seen.add(m)
        for name, f in m.model_fields.items():
            names.add(f.alias or name)
            for inner in _models_in(f.annotation):
                walk(inner)
    for m in models:
        walk(m)
    return names


def _models_in(annotation: object) -> list[type[BaseModel]]:
    from typing import get_args
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


FIELDS = _fields(node.MODELS + trunk.MODELS)


def _string_literals(path: str) -> list[tuple[int, str]]:
    source = (ROOT / path).read_text()
    start = 1
    if path == "media/room.py":
        start = source[:source.index(ROOM_FIGURES_FROM)].count("\n") + 1
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.STRING or tok.start[0] < start:
            continue
        plain = re.fullmatch(r"[rbRB]?([\"'])(.*)\1", tok.string, re.S)
        if plain:
            out.append((tok.start[0], plain[2]))
        elif tok.string[:1] in "fF":  # an f-string: the literals inside its braces ({x['name']})
            out += [(tok.start[0], m[2]) for m in re.finditer(r"([\"'])(\w+)\1", tok.string[2:-1])]
    return out


def test_the_contracts_hold_the_names_they_are_checked_by():
    # the check below is only as good as the field list: the nested models are reached
    assert {"grant_key", "media_ports_refused", "bitrate_in_kbps", "recv_calls", "kbps_down", "linked", "joined_at",
            "dropped", "why", "ranking", "speaker", "levels", "sites", "up", "down"} <= FIELDS
    # and an exception names a field of a contract, or it excuses nothing
    assert {w for words in EXCEPTIONS.values() for w in words} <= FIELDS


@pytest.mark.parametrize("path", MODULES)
def test_no_field_name_of_a_contract_is_spelled_as_a_string_literal(path):
    allowed = EXCEPTIONS.get(path, {})
    found = [(line, text) for line, text in _string_literals(path) if text in FIELDS and text not in allowed]
    assert not found, f"{path} spells contract fields as string literals (use the models in media/contracts/): {found}"
    stale = sorted(set(allowed) - {text for _, text in _string_literals(path)})
    assert not stale, f"{path}: exceptions no longer needed, drop them: {stale}"


def test_the_trunk_carries_as_many_slots_as_an_order_names():
    from media.trunk import KINDS
    assert len(KINDS) == trunk.SLOTS


def test_a_peer_that_sends_what_is_not_of_the_contract_is_refused_with_the_reason():
    with pytest.raises(ValidationError, match="up"):
        trunk.TO_CHILD.validate_json(json.dumps({"type": "order", "ranking": {"video": [], "audio": []},
                                                 "speaker": None, "up": [None], "down": [None] * 3}))
    with pytest.raises(ValidationError):
        trunk.TO_ROOT.validate_json(json.dumps({"type": "levels", "levels": [["cc", "loud"]]}))
    with pytest.raises(ValidationError):
        node.FollowPlan.model_validate_json(json.dumps({"session": "s", "layout": {}}))  # a typo: refused, not ignored
    # a leg without `kind` is a WebRTC leg, as nodes reported it before the contract said so
    (leg,) = node.LEGS.validate_python([{"site": "cc", "state": "connected"}])
    assert isinstance(leg, node.WebrtcLeg)


def test_figures_are_absent_when_unknown_and_not_null():
    fig = node.WebrtcLeg(site="cc", state="connected")
    wire = fig.model_dump(mode="json")
    assert "bitrate_in_kbps" not in wire and "stats_error" not in wire and "node" not in wire
    assert wire["resolution"] is None and wire["program"] is None  # these are null while unknown, as always
