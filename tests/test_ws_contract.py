"""The /ws contract: its JSON Schema is served beside the OpenAPI document and describes every message
either side can send; what it refuses is answered with the codes clients act on."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from confctl.app import make_app
from confctl.config import Settings
from media.contracts import browser
from media.room import TOLD
from media.signalling import WsError, read_message
from rooms.topology import demo_topology_path
from tests.ws_contract import undescribed, validators

ROOT = Path(__file__).resolve().parent.parent
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
# One of each message the server sends, as media/signalling.py and confctl/signalling.py build them.
TO_SITE = [
    browser.Redirect(url="wss://node-cc.example:8443/ws", grant="e30.c2ln", notice="media node node-jl is down"),
    browser.Redirect(url="ws://127.0.0.1:9000/ws", grant="e30.c2ln"),
    browser.Joined(session="ses_1", site="cc", host="jl", mode="meeting"),
    browser.Joined(session="ses_1", site="cc", host="jl", mode="echo", notice="cc joins through node-jl"),
    browser.Answer(sdp=SDP),
    browser.ProgramUpdate(video=["jl", None], audio="jl"),
    browser.ProgramUpdate(video=[None, None], audio=None),
    browser.Rejoin(reason="media node node-cc is down: the session moved to node-jl"),
    *(browser.Ended(reason=r.value, detail="why") for r in TOLD),
    *(browser.LayoutChange(layout=layout, detail="an emergency needs this link") for layout in ("full", "speaker", "audio")),
    *(browser.Error(code=code, detail="words") for code in browser.ErrorCode.__args__),
]
TO_SERVER = [browser.Join(token="abc.def"), browser.Join(token="abc.def", mode="echo"), browser.Join(grant="e30.c2ln"),
             browser.Offer(sdp=SDP), browser.Leave()]


@pytest.fixture
async def served(aiohttp_client, tmp_path) -> tuple[dict, dict]:
    """(the /ws schema, the OpenAPI document) as a control plane serves them."""
    client = await aiohttp_client(make_app(Settings(topology_file=demo_topology_path(),
                                                    db_url=f"sqlite:///{tmp_path}/c.db")))
    r = await client.get("/api/ws-schema.json")
    assert r.status == 200 and r.content_type == "application/json"
    return await r.json(), await (await client.get("/api/openapi.json")).json()


async def test_every_message_either_side_sends_is_described_by_the_served_schema(served):
    schema, _ = served
    check = validators(schema)
    assert {type(m) for m in TO_SITE} == set(browser.models(browser.ToSite))  # a new message needs an example here
    assert {type(m) for m in TO_SERVER} == set(browser.models(browser.ToServer))
    for direction, messages in (("ToSite", TO_SITE), ("ToServer", TO_SERVER)):
        for m in messages:
            wire = m.model_dump(mode="json")
            assert [e.message for e in check[direction].iter_errors(wire)] == [], wire
    # Each direction is its own: a browser that sent `joined` would not be described.
    assert not check["ToServer"].is_valid(TO_SITE[2].model_dump(mode="json"))
    assert not check["ToSite"].is_valid(TO_SERVER[0].model_dump(mode="json"))


async def test_the_schema_refuses_what_no_side_sends(served):
    check = validators(served[0])
    assert not check["ToServer"].is_valid({"type": "dance"})
    assert not check["ToServer"].is_valid({"type": "offer"})  # no sdp
    assert not check["ToServer"].is_valid({"type": "join", "token": "a.b", "room": "jl"})  # a field it does not know
    assert not check["ToServer"].is_valid({"type": "join", "mode": None})  # absent, never null
    assert not check["ToSite"].is_valid({"type": "error", "code": "oops", "detail": "?"})
    assert not check["ToSite"].is_valid({"type": "program", "video": ["jl"]})  # audio is always said, null or not


async def test_the_openapi_document_links_the_ws_schema(served):
    _, doc = served
    assert doc["x-websockets"]["/ws"]["schema"] == "/api/ws-schema.json"
    assert "(/api/ws-schema.json)" in doc["info"]["description"]
    assert doc["paths"]["/api/ws-schema.json"]["get"]["security"] == []  # a client reads it before it has a token


def test_every_refusal_code_in_the_servers_is_one_the_contract_names():
    """A code raised anywhere (the control plane's, a node's) must be in ErrorCode, or building its message fails."""
    sources = [*ROOT.glob("media/*.py"), *ROOT.glob("confctl/**/*.py")]
    raised = {code for p in sources for code in re.findall(r'WsError\(\s*"(\w+)"', p.read_text())}
    assert raised and raised <= set(browser.ErrorCode.__args__), raised - set(browser.ErrorCode.__args__)


def test_the_ended_reasons_are_those_the_node_tells():
    assert set(browser.EndedReason.__args__) == {r.value for r in TOLD}


@pytest.mark.parametrize("text, code", [
    ("{not json", "invalid_json"),
    ("[" * 100_000, "invalid_json"),
    ('["join"]', "invalid_message"),
    ('{"type": 5}', "invalid_message"),
    ('{"token": "a.b"}', "invalid_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "joined", "session": "s", "site": "a", "host": "a", "mode": "meeting"}', "unknown_type"),
    ('{"type": "offer"}', "invalid_sdp"),
    ('{"type": "offer", "sdp": 1}', "invalid_sdp"),
    ('{"type": "join", "token": 42}', "invalid_token"),
    ('{"type": "join", "grant": ["x"]}', "invalid_grant"),
    ('{"type": "join", "token": "a.b", "mode": "rehearsal"}', "invalid_message"),
    ('{"type": "leave", "why": "done"}', "invalid_message"),
])
def test_what_the_contract_refuses_is_answered_with_the_code_clients_act_on(text, code):
    with pytest.raises(WsError) as refused:
        read_message(text)
    assert refused.value.code == code
    assert validators(browser.json_schema())["ToSite"].is_valid(refused.value.message().model_dump(mode="json"))


def test_a_message_read_is_the_contracts_model():
    assert read_message('{"type": "join", "token": "a.b", "mode": "echo"}') == browser.Join(token="a.b", mode="echo")
    assert read_message('{"type": "offer", "sdp": "v=0"}') == browser.Offer(sdp="v=0")
    assert read_message('{"type": "leave"}') == browser.Leave()


def test_the_browser_check_reports_a_frame_the_schema_does_not_describe():
    """What test_join_page.py's check finds when join.js misspells a field, sends a type or a frame of its own."""
    check = validators(browser.json_schema())
    frames = [("ToServer", '{"type": "join", "token": "a.b", "mode": "meeting"}'),
              ("ToServer", '{"type": "offer", "spd": "v=0"}'), ("ToServer", '{"type": "ping"}'),
              ("ToServer", "hello"), ("ToSite", '{"type": "answer", "sdp": "v=0"}')]
    assert [(d, p) for d, p, _ in undescribed(check, frames)] == [
        ("ToServer", '{"type": "offer", "spd": "v=0"}'), ("ToServer", '{"type": "ping"}'), ("ToServer", "hello")]
