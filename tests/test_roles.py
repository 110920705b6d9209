"""The role table is the route list: every route × every role, against what the middleware enforces."""
from __future__ import annotations

from confctl.app import all_routes
from tests.conftest import booking

WHO = {"organizer": "olga", "technician": "tina", "operator": "opal", "admin": "ada", "node": "nora"}


def _path(template: str, session_id: str) -> str:
    return (template.replace("{id}", session_id).replace("{site}", "cc-nongan").replace("{name}", "x.webm"))


# Writes every person may make that change nothing in the network: their own feed tokens and bearer tokens,
# and an operator's acknowledgement of an alarm (the one thing operators do, besides reading).
OWN_WRITES = {("POST", "/api/feed-tokens"), ("DELETE", "/api/feed-tokens/{id}"), ("POST", "/api/alarms/{id}/ack"),
              ("POST", "/api/tokens"), ("POST", "/api/tokens/{id}/rotate"), ("DELETE", "/api/tokens/{id}")}


def test_the_readme_role_promises_hold_in_the_table():
    for r in all_routes():
        if r.method != "GET" and (r.method, r.path) not in OWN_WRITES:
            assert "operator" not in r.roles, f"operators only read: {r.method} {r.path}"
            assert "technician" not in r.roles, f"technicians only read and join: {r.method} {r.path}"
        if r.method == "GET" and not r.public and r.path != "/api/users":
            assert "operator" in r.roles, f"operators read everything: {r.path}"
        assert set(r.roles) <= set(WHO) | {"public"}, r


async def test_every_route_answers_each_role_as_the_table_says(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "cc-nongan"]), headers=api.h("olga"))).json()
    seen = 0
    # Writes last, deletes at the very end: a cancelled session still answers, not 403.
    order = sorted(all_routes(), key=lambda r: (r.method == "DELETE", r.method != "GET"))
    for r in order:
        path = _path(r.path, s["id"])
        for role, name in WHO.items():
            resp = await api.request(r.method, path, json={} if r.method in ("POST", "PUT", "PATCH") else None,
                                     headers=api.h(name))
            if resp.status == 200 and r.content_type == "text/event-stream":
                resp.close()  # a live feed never ends: that it opened is the answer
                text = ""
            else:
                text = await resp.text()
            if r.public:
                assert resp.status not in (401, 403), (role, r.method, r.path, text)
            elif role in r.roles:
                assert resp.status not in (401, 403), (role, r.method, r.path, resp.status, text)
            else:
                assert resp.status == 403 and "forbidden" in text, (role, r.method, r.path, resp.status, text)
            seen += 1
        if not r.public:
            anonymous = await api.request(r.method, path)
            assert anonymous.status == 401, (r.method, r.path)
    assert seen == 5 * len(order)


async def test_join_links_only_for_the_organizer_admins_and_the_sites_own_technician(api):
    s = await (await api.post("/api/sessions", json=booking(["jl", "cc-nongan", "sp"]), headers=api.h("olga"))).json()
    links = {}
    for name in ("olga", "oscar", "tina", "opal", "ada"):
        r = await api.get(f"/api/sessions/{s['id']}", headers=api.h(name))
        links[name] = set((await r.json()).get("join_urls", {})) if r.status == 200 else None
    assert links == {"olga": {"jl", "cc-nongan", "sp"}, "ada": {"jl", "cc-nongan", "sp"}, "tina": {"cc-nongan"},
                     "opal": set(), "oscar": set()}
