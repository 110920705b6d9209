"""Each role signs in and lands on its own work, never on a page that refuses it."""
from __future__ import annotations


async def test_each_role_lands_on_its_own_page(api):
    expected = {"olga": "/book", "ada": "/book", "opal": "/operator", "tina": "/sessions?site=cc-nongan"}
    for who, where in expected.items():
        r = await api.post("/api/signin", json={"token": api.tokens[who]})
        cookie = {"Cookie": r.headers["Set-Cookie"].split(";")[0]}
        home = await api.get("/", headers=cookie, allow_redirects=False)
        assert home.status == 302 and home.headers["Location"] == where, (who, home.headers.get("Location"))
        page = await api.get(where, headers=cookie)
        assert page.status == 200, (who, where)  # and that page is theirs, not a refusal
    api.session.cookie_jar.clear()  # the test client kept the last sign-in's cookie
    anonymous = await api.get("/", allow_redirects=False)
    assert anonymous.headers["Location"].startswith("/signin")
