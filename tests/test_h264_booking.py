"""What an H.264 session cannot do yet is refused in words at booking, not discovered in the meeting."""
from __future__ import annotations

from tests.conftest import booking


async def test_an_h264_session_books_central_and_refuses_cascade_and_recording_with_reasons(api):
    ok = await api.post("/api/sessions", json=booking(["jl", "cc"], codec="h264"), headers=api.h("olga"))
    assert ok.status == 201, await ok.text()
    s = await ok.json()
    assert (s["codec"], s["plan"]) == ("h264", "central")
    for extra, word in (({"plan": "cascade"}, "trunks between nodes"), ({"record": True}, "cannot be recorded")):
        r = await api.post("/api/sessions", json=booking(["jl", "sp"], hour=14, codec="h264", **extra),
                           headers=api.h("olga"))
        assert r.status == 422 and word in str((await r.json())["detail"]), await r.text()
    # an edit that would record it is refused the same way, and leaves it as it was
    r = await api.patch(f"/api/sessions/{s['id']}", json={"record": True}, headers=api.h("olga"))
    assert r.status == 422 and "cannot be recorded" in str((await r.json())["detail"])
    assert (await (await api.get(f"/api/sessions/{s['id']}", headers=api.h("olga"))).json())["record"] is False
