"""The C boundary, held in writing: media.native's constants equal the Python side's (rtp_output,
forwarding, aiortc_hooks, aiortc's and pylibsrtp's), the routes Python builds have the fields the C
reads in its order, and media/native.pyi describes the module that was built (names, members,
signatures), so a change on one side that the other did not follow fails here by name."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pylibsrtp
import pytest
from aiortc import rate, rtp

from media import aiortc_hooks, forwarding, native, rtp_output
from media.native_routes import ReceiveRoute, SendRoute

STUB = Path(native.__file__).with_name("native.pyi")


def test_the_constants_the_c_holds_are_the_python_sides():
    assert native.HISTORY == rtp_output.HISTORY
    assert native.REORDER == rtp_output.REORDER
    assert (native.VIDEO_STEP, native.AUDIO_STEP) == (rtp_output.VIDEO_STEP, rtp_output.AUDIO_STEP)
    assert native.KEYFRAME_RETRY_S == rtp_output.KEYFRAME_RETRY_S == forwarding.KEYFRAME_RETRY_S
    assert native.FREEZE_S == forwarding.FREEZE_S
    assert native.READS_PER_WAKEUP == aiortc_hooks.READS_PER_WAKEUP
    # the longest packet built and read: pylibsrtp's own buffer, and what it reserves after a packet
    session = pylibsrtp.Session(pylibsrtp.Policy(key=bytes(30), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    assert native.MAX_PACKET == rtp_output.MAX_PACKET == aiortc_hooks.MAX_DATAGRAM == len(session._buffer)
    assert native.SRTP_TRAILER == pylibsrtp.SRTP_MAX_TRAILER_LEN
    # aiortc's, which native_stats.c and native_estimate.c reproduce
    assert native.RTP_HISTORY_SIZE == rtp.RTP_HISTORY_SIZE
    assert (native.PACKETS_LOST_MIN, native.PACKETS_LOST_MAX) == (rtp.PACKETS_LOST_MIN, rtp.PACKETS_LOST_MAX)
    estimator = rate.RemoteBitrateEstimator()
    assert (native.ESTIMATE_WINDOW_MS, native.ESTIMATE_SCALE) == (estimator.incoming_bitrate._window_size,
                                                                  estimator.incoming_bitrate._scale)
    assert native.ESTIMATE_GROUP_LENGTH == (rate.TIMESTAMP_GROUP_LENGTH_MS << rate.INTER_ARRIVAL_SHIFT) // 1000
    assert native.TIMESTAMP_TO_MS == rate.TIMESTAMP_TO_MS
    assert native.BURST_DELTA_THRESHOLD_MS == rate.BURST_DELTA_THRESHOLD_MS
    assert native.MAX_ADAPT_OFFSET_MS == rate.MAX_ADAPT_OFFSET_MS
    assert native.MIN_NUM_DELTAS == rate.MIN_NUM_DELTAS
    assert native.DELTA_COUNTER_MAX == rate.DELTA_COUNTER_MAX
    assert native.FRAME_PERIOD_HISTORY == rate.MIN_FRAME_PERIOD_HISTORY_LENGTH


def test_the_routes_python_builds_have_the_fields_the_c_reads_in_its_order():
    assert SendRoute._fields == native.SEND_ROUTE
    assert ReceiveRoute._fields == native.RECEIVE_ROUTE
    # a route one field short is refused, not read off its end
    out = native.Output("audio", rtp_output.Negotiated(5, 111, "opus"))
    out.set_router(lambda: tuple(range(len(SendRoute._fields) - 1)))
    out.switched(0.0)
    with pytest.raises(TypeError):
        native.fan_out((out,), 1, 960, False, b"opus", None)


def test_a_stream_is_made_by_keyword_only():
    """Fifteen arguments, several of them callables or None: one in the wrong place would be a wrong
    stream that runs, so the C takes them by name only."""
    with pytest.raises(TypeError, match="keyword arguments only"):
        native.Stream(1, 96, True, True, None, None, None, None, native.StreamStatistics(90000), None, None, None,
                      None, None, None)
    with pytest.raises(TypeError):
        native.Stream(ssrc=1)  # every one of them, by name
    params = inspect.signature(native.Stream).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def _public(names: set[str]) -> set[str]:
    return {n for n in names if not n.startswith("__")}


def _stub_members(cls: ast.ClassDef) -> set[str]:
    return {node.name for node in cls.body if isinstance(node, ast.FunctionDef) and node.name != "__init__"}


def _stub_parameters(fn: ast.FunctionDef) -> list[tuple[str, inspect._ParameterKind, bool]]:
    """(name, kind, has a default) per parameter, self left out."""
    a = fn.args
    positional = [(x, inspect.Parameter.POSITIONAL_ONLY) for x in a.posonlyargs] + \
        [(x, inspect.Parameter.POSITIONAL_OR_KEYWORD) for x in a.args]
    firsts_without = len(positional) - len(a.defaults)
    out = [(x.arg, kind, i >= firsts_without) for i, (x, kind) in enumerate(positional)]
    out += [(x.arg, inspect.Parameter.KEYWORD_ONLY, d is not None) for x, d in zip(a.kwonlyargs, a.kw_defaults)]
    return [p for p in out if p[0] != "self"]


def _runtime_parameters(obj: object) -> list[tuple[str, inspect._ParameterKind, bool]]:
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(obj).parameters.values() if p.name != "self"]


def test_the_stub_names_what_the_module_has():
    stub = _stub()
    declared = {node.name for node in stub.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    declared |= {node.target.id for node in stub.body if isinstance(node, ast.AnnAssign)
                 and isinstance(node.target, ast.Name)}
    assert {n for n in declared if not n.startswith("_")} == _public(set(vars(native)))
    for cls in (node for node in stub.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_")):
        runtime = getattr(native, cls.name)
        assert _stub_members(cls) == _public(set(vars(runtime))), cls.name


def test_the_stub_signatures_are_the_modules():
    """Every constructor, method and function the C gives a text signature to, against the stub's."""
    compared = 0
    for node in _stub().body:
        if isinstance(node, ast.FunctionDef):
            assert _stub_parameters(node) == _runtime_parameters(getattr(native, node.name)), node.name
            compared += 1
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            cls = getattr(native, node.name)
            for fn in (x for x in node.body if isinstance(x, ast.FunctionDef)):
                if any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list):
                    assert not callable(getattr(cls, fn.name)), f"{node.name}.{fn.name} is a method, not a property"
                    continue
                runtime = cls if fn.name == "__init__" else getattr(cls, fn.name)
                assert _stub_parameters(fn) == _runtime_parameters(runtime), f"{node.name}.{fn.name}"
                compared += 1
    assert compared == 23  # 3 functions, and 20 constructors and methods of 6 classes
