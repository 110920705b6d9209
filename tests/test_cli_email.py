"""`confctl users add --email`, `confctl users email`, and `confctl serve --smtp` refusing a bad relay URL
(the CLI's own main(), in-process: what it prints and how it exits)."""
from __future__ import annotations

import pytest

from confctl.cli.main import main
from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.store.users import UserStore
from rooms.topology import demo_topology, demo_topology_path


def run(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_users_address_is_given_changed_and_cleared_and_a_bad_one_refused_in_words(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    engine = make_engine(url)
    upgrade(engine)
    BookingStore(engine).set_topology(demo_topology())
    code, out, _ = run(capsys, "users", "add", "olga", "--role", "organizer", "--email", "olga@JL.example", "--db", url)
    assert code == 0 and "olga@jl.example" in out
    code, _, err = run(capsys, "users", "add", "eve", "--role", "organizer", "--email", "eve.jl.example", "--db", url)
    assert code == 2 and "not an e-mail address" in err
    assert run(capsys, "users", "email", "olga", "o@cc.example", "--db", url)[0] == 0
    assert UserStore(engine).by_name("olga").email == "o@cc.example"  # type: ignore[union-attr]
    assert "o@cc.example" in run(capsys, "users", "list", "--db", url)[1]
    assert run(capsys, "users", "email", "olga", "--clear", "--db", url)[0] == 0
    assert UserStore(engine).by_name("olga").email is None  # type: ignore[union-attr]
    code, _, err = run(capsys, "users", "email", "nobody", "x@cc.example", "--db", url)
    assert code == 2 and "no user named 'nobody'" in err
    code, _, err = run(capsys, "users", "email", "olga", "--db", url)
    assert code == 2 and "--clear" in err
    engine.dispose()


@pytest.mark.parametrize("smtp, says", [("smtp://relay:secret@mail.jl.example", "CONFCTL_SMTP_PASSWORD"),
                                        ("mail.jl.example", "scheme")])
def test_serve_refuses_a_bad_smtp_url_before_it_starts(tmp_path, capsys, smtp, says):
    code, out, err = run(capsys, "serve", "--smtp", smtp, "--topology", str(demo_topology_path()),
                         "--db", f"sqlite:///{tmp_path}/serve.db", "--port", "0", "--sip-port", "0")
    assert code == 2 and says in err and "serving" not in out
