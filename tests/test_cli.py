"""The `confctl` command as an administrator uses it: real processes, a real database file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from confctl.cli.main import build_parser
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology, demo_topology_path
from tests.conftest import add_users, tomorrow_at

CONFCTL = str(Path(sys.executable).parent / "confctl")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONFCTL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def db(tmp_path) -> str:
    """A database holding the demo network (the CLI never loads it by itself) and the people who write with
    --as: organizers olga and oscar, technician tina, admin ada."""
    url = f"sqlite:///{tmp_path}/cli.db"
    engine = make_engine(url)
    upgrade(engine)
    BookingStore(engine).set_topology(demo_topology())
    engine.dispose()
    add_users(url, [("olga", Role.ORGANIZER, None), ("oscar", Role.ORGANIZER, None),
                    ("tina", Role.TECHNICIAN, "cc-nongan"), ("ada", Role.ADMIN, None)])
    return url


def test_users_add_prints_a_working_token_last(tmp_path, db):
    r = run("users", "add", "tess", "--role", "technician", "--site", "cc-nongan", "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    user = UserStore(make_engine(db)).by_token(token)
    assert user is not None and user.name == "tess" and user.site == "cc-nongan"
    bad = run("users", "add", "tom", "--role", "technician", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "technician is bound to one site" in bad.stderr
    bad = run("users", "add", "tom", "--role", "technician", "--site", "atlantis", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "atlantis" in bad.stderr


def test_every_minted_token_can_be_passed_as_a_cli_option(tmp_path):
    # A token starting with "-" reads as an option to argparse (`--token -x...` fails);
    # token_urlsafe starts with "-" one time in 64, so 300 tokens would all but surely show it.
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    upgrade(engine)
    users = UserStore(engine)
    parser = build_parser()
    for i in range(300):
        _, token = users.add(f"node{i}", Role.NODE, None, set())
        args = parser.parse_args(["media-node", "--control", "http://127.0.0.1:8080", "--token", token])
        assert args.token == token


def _write(tmp_path: Path, sites: list[dict]) -> Path:
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({"default_rooms": {"x": [{"id": "main"}]},
                                 "sites": [dict(level="x", **s) for s in sites]}))
    return p


@pytest.mark.parametrize("sites, message", [
    ([{"id": "a"}, {"id": "b", "parent": "c", "uplink_mbps": 1}, {"id": "c", "parent": "b", "uplink_mbps": 1}], "cycle"),
    ([{"id": "a"}, {"id": "b", "parent": "nowhere", "uplink_mbps": 10}], "site b: parent nowhere does not exist"),
])
def test_topology_load_rejects_bad_files_and_keeps_the_old_one(tmp_path, db, sites, message):
    assert run("topology", "load", str(demo_topology_path()), "--db", db, cwd=tmp_path).returncode == 0
    r = run("topology", "load", str(_write(tmp_path, sites)), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(BookingStore(make_engine(db)).topology().sites) == 78


def test_topology_load_refuses_while_future_bookings_would_break(tmp_path, db):
    t = tomorrow_at(9)
    r = run("book", "--title", "Drill", "--host", "jl", "--site", "cc-nongan", "--site", "jlc", "--as", "olga",
            "--start", t.isoformat(), "--end", (t + timedelta(hours=1)).isoformat(), "--db", db, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("booked ses_"), r.stdout + r.stderr
    doc = yaml.safe_load(demo_topology_path().read_text())
    doc["sites"] = [s for s in doc["sites"] if s["id"] != "cc-nongan"]
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(doc, allow_unicode=True))
    r = run("topology", "load", str(smaller), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "Drill" in r.stderr and "cc-nongan" in r.stderr


def test_book_refusal_exits_3_and_names_the_link(tmp_path, db):
    t = tomorrow_at(9)
    r = run("book", "--title", "HD", "--host", "jl", "--site", "cc-nongan", "--site", "jlc", "--profile", "hd1080",
            "--start", t.isoformat(), "--end", (t + timedelta(hours=1)).isoformat(), "--as", "olga", "--db", db,
            cwd=tmp_path)
    assert r.returncode == 3
    assert "link cc-nongan down" in r.stdout and "needs 8480 kbit/s, 7500 free" in r.stdout
    assert "profile=hd720" in r.stdout
    r = run("book", "--title", "x", "--host", "jl", "--start", "2030-01-01T10:00:00+08:00",
            "--end", "2030-01-01T09:00:00+08:00", "--as", "olga", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "not after start" in r.stderr
    listed = run("sessions", "list", "--db", db, cwd=tmp_path)
    assert listed.stdout.strip().endswith("0 session(s)")


def test_capacity_prints_the_county_figures(tmp_path, db):
    r = run("capacity", "--plan", "cascade", "--json", "--db", db, cwd=tmp_path)
    import json
    rows = [x for x in json.loads(r.stdout) if x["level"] == "county"]
    assert {x["profile"]: (x["sessions"], x["binding"]) for x in rows if x["layout"] == "full"} == {
        "hd1080": (0, "down"), "hd720": (1, "down"), "sd": (4, "down"), "audio": (93, "both")}
    # where the full program does not fit, the richest layout that does: HD1080 with the speaker only
    assert [(x["profile"], x["layout"], x["sessions"]) for x in rows if x["layout"] != "full"] == [("hd1080", "speaker", 1)]
    r = run("capacity", "--profile", "uhd", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "unknown profile" in r.stderr


def test_bad_database_url_is_one_clear_line(tmp_path):
    r = run("sessions", "list", "--db", "mysql://nowhere/x", cwd=tmp_path)
    assert r.returncode == 2 and "unsupported database" in r.stderr and "Traceback" not in r.stderr


def test_an_empty_database_gets_no_topology_behind_the_users_back(tmp_path):
    empty = f"sqlite:///{tmp_path}/empty.db"
    r = run("serve", "--db", empty, "--port", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--topology" in r.stderr and "Traceback" not in r.stderr
    r = run("sessions", "list", "--db", empty, cwd=tmp_path)
    assert r.returncode == 2 and "confctl topology load" in r.stderr
    assert not BookingStore(make_engine(empty)).has_topology()


def test_serve_refuses_a_malformed_alarm_file_before_it_starts(tmp_path, db):
    bad = tmp_path / "alarms.yaml"
    bad.write_text("defaults: {loss_pct: lots}\n")
    r = run("serve", "--db", db, "--port", "0", "--alarms", str(bad), cwd=tmp_path)
    assert r.returncode == 2 and "defaults.loss_pct: expected a number" in r.stderr and "Traceback" not in r.stderr


def _book(tmp_path: Path, db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    t = tomorrow_at(9)
    as_ = () if "--as" in extra else ("--as", "olga")
    return run("book", "--title", "Flood drill", "--host", "jl", "--site", "cc-nongan", "--start", t.isoformat(),
               "--end", (t + timedelta(hours=1)).isoformat(), "--profile", "sd", "--db", db, *as_, *extra, cwd=tmp_path)


def test_book_prints_the_start_join_links_and_dial_in_and_json_carries_them(tmp_path, db):
    r = _book(tmp_path, db, "--url", "https://confctl.example")
    assert r.returncode == 0, r.stderr
    assert tomorrow_at(9).isoformat() in r.stdout and "dial-in  " in r.stdout
    assert "Nong'an County" in r.stdout and "https://confctl.example/join?token=" in r.stdout
    later = tomorrow_at(11)  # the rooms of the first are taken at 9
    doc = json.loads(_book(tmp_path, db, "--json", "--profile", "audio", "--start", later.isoformat(),
                           "--end", (later + timedelta(hours=1)).isoformat()).stdout)
    assert set(doc["join_urls"]) == {"jl", "cc-nongan"} and doc["dial_in"].isdigit()


def test_sessions_show_edit_and_cancel(tmp_path, db):
    sid = json.loads(_book(tmp_path, db, "--json").stdout)["id"]
    shown = run("sessions", "show", sid, "--db", db, cwd=tmp_path)
    assert shown.returncode == 0 and "join links:" in shown.stdout and "cc-nongan" in shown.stdout
    later = tomorrow_at(14)
    r = run("sessions", "edit", sid, "--start", later.isoformat(), "--end", (later + timedelta(hours=1)).isoformat(),
            "--as", "olga", "--db", db, cwd=tmp_path)
    assert r.returncode == 0 and later.isoformat() in r.stdout
    # every county room taken at that time would refuse it; here a profile the county link cannot carry does
    r = run("sessions", "edit", sid, "--site", "cc-nongan", "--site", "cc-yushu", "--profile", "hd1080", "--as", "olga",
            "--db", db, cwd=tmp_path)
    assert r.returncode == 3 and "refused" in r.stdout and "cc-nongan" in r.stdout
    after = json.loads(run("sessions", "show", sid, "--json", "--db", db, cwd=tmp_path).stdout)
    assert after["profile"] == "sd" and after["start"] == later.isoformat()  # the refused edit changed nothing
    assert run("sessions", "edit", sid, "--as", "olga", "--db", db, cwd=tmp_path).returncode == 2  # nothing to change
    r = run("sessions", "cancel", sid, "--as", "olga", "--db", db, cwd=tmp_path)
    assert r.returncode == 0 and "cancelled" in r.stdout
    again = run("sessions", "cancel", sid, "--as", "olga", "--db", db, cwd=tmp_path)
    assert again.returncode == 2 and "already cancelled" in again.stderr
    assert run("sessions", "show", "ses_nope", "--db", db, cwd=tmp_path).returncode == 2


def test_sessions_list_has_headers_and_dial_in_and_an_unknown_site_is_an_error(tmp_path, db):
    _book(tmp_path, db)
    r = run("sessions", "list", "--db", db, cwd=tmp_path)
    head, row = r.stdout.splitlines()[:2]
    assert head.split()[:7] == ["id", "start", "end", "profile", "plan", "dial-in", "title"]
    assert row.split()[6].isdigit()  # the dial-in number (after "..")
    r = run("sessions", "list", "--site", "atlantis", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "no such site" in r.stderr and r.stdout == ""


def test_a_database_in_a_folder_that_does_not_exist_is_an_error_not_a_new_file(tmp_path):
    r = run("sessions", "list", "--db", f"sqlite:///{tmp_path}/typo/confctl.db", cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr and not (tmp_path / "typo").exists()


def test_writes_run_as_a_named_user_checked_never_a_free_text_id(tmp_path, db):
    r = _book(tmp_path, db, "--as", "mallory")
    assert r.returncode == 2 and "--as mallory: no such user" in r.stderr and "Traceback" not in r.stderr
    r = _book(tmp_path, db, "--as", "tina")
    assert r.returncode == 2 and "a technician may not book" in r.stderr
    t = tomorrow_at(9)
    r = run("book", "--title", "x", "--host", "jl", "--site", "cc-nongan", "--start", t.isoformat(),
            "--end", (t + timedelta(hours=1)).isoformat(), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "--as NAME" in r.stderr
    assert run("sessions", "list", "--db", db, cwd=tmp_path).stdout.strip().endswith("0 session(s)")  # none booked
    r = _book(tmp_path, db, "--organizer", "usr_anyone")  # the old free-text id is gone
    assert r.returncode == 2 and "unrecognized arguments: --organizer" in r.stderr
    sid = json.loads(_book(tmp_path, db, "--json").stdout)["id"]
    olga = UserStore(make_engine(db)).by_name("olga")
    assert olga is not None and BookingStore(make_engine(db)).get(sid)["organizer_id"] == olga.id
    # another organizer may not change or cancel it (as in the API); an admin may
    r = run("sessions", "cancel", sid, "--as", "oscar", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "another organizer's session" in r.stderr
    r = run("sessions", "edit", sid, "--title", "Mine now", "--as", "oscar", "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "another organizer's session" in r.stderr
    assert BookingStore(make_engine(db)).get(sid)["status"] == "booked"
    assert run("sessions", "cancel", sid, "--db", db, cwd=tmp_path).returncode == 2  # no --as: refused
    r = run("sessions", "cancel", sid, "--as", "ada", "--db", db, cwd=tmp_path)
    assert r.returncode == 0 and "cancelled" in r.stdout


def _user_env(tmp_path: Path, xdg: bool = True) -> dict[str, str]:
    """A user whose home and data directory are under tmp_path, with no $CONFCTL_DB."""
    env = {k: v for k, v in os.environ.items() if k not in ("CONFCTL_DB", "XDG_DATA_HOME")}
    env["HOME"] = str(tmp_path / "home")
    if xdg:
        env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env


def test_run_from_any_directory_every_command_uses_the_one_default_database(tmp_path, db):
    env = _user_env(tmp_path)
    where = tmp_path / "data" / "confctl" / "confctl.db"
    here, there, elsewhere = (tmp_path / name for name in ("here", "there", "elsewhere"))
    for d in (here, there, elsewhere):
        d.mkdir()
    r = run("db", "which", cwd=here, env=env)
    assert r.returncode == 0 and r.stdout.startswith(f"sqlite:///{where} ") and "(the default" in r.stdout, r.stdout
    assert run("topology", "load", str(demo_topology_path()), cwd=here, env=env).returncode == 0
    r = run("users", "add", "olga", "--role", "organizer", cwd=there, env=env)
    assert r.returncode == 0, r.stderr
    t = tomorrow_at(9)
    r = run("book", "--title", "Seen everywhere", "--host", "jl", "--site", "cc-nongan", "--profile", "sd",
            "--start", t.isoformat(), "--end", (t + timedelta(hours=1)).isoformat(), "--as", "olga",
            cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr
    for d in (here, there, elsewhere):
        listed = run("sessions", "list", cwd=d, env=env)
        assert "Seen everywhere" in listed.stdout and listed.stdout.strip().endswith("1 session(s)"), listed.stderr
        assert not (d / "var").exists()  # no database of its own in the current directory
    which = run("db", "which", cwd=tmp_path, env=env).stdout
    assert which.startswith(f"sqlite:///{where} ") and "topology: Jilin" in which and "1 booked session(s)" in which
    assert len(BookingStore(make_engine(f"sqlite:///{where}")).list()) == 1  # the file it named holds it


def test_the_default_follows_home_without_xdg_and_confctl_db_overrides_it(tmp_path):
    env = _user_env(tmp_path, xdg=False)
    r = run("db", "which", cwd=tmp_path, env=env)
    assert r.stdout.startswith(f"sqlite:///{tmp_path}/home/.local/share/confctl/confctl.db "), r.stdout + r.stderr
    other = f"sqlite:///{tmp_path}/other.db"
    r = run("db", "which", cwd=tmp_path, env={**env, "CONFCTL_DB": other})
    assert r.stdout.startswith(other + " ") and "($CONFCTL_DB" in r.stdout
    r = run("db", "which", "--db", f"sqlite:///{tmp_path}/given.db", cwd=tmp_path, env={**env, "CONFCTL_DB": other})
    assert "given.db" in r.stdout and "(--db" in r.stdout


def test_make_run_serves_the_default_database_the_cli_names(tmp_path):
    env = _user_env(tmp_path)
    cli = run("db", "which", cwd=tmp_path, env=env).stdout.split()[0]
    demo = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "run_demo.py"), "--help"],
                          cwd=tmp_path, env={**env, "COLUMNS": "1000"}, capture_output=True, text=True, timeout=60)
    assert demo.returncode == 0 and f"default {cli} " in " ".join(demo.stdout.split()), demo.stdout + demo.stderr


def test_topology_show_prints_units_and_capacity_folds_plans_that_agree(tmp_path, db):
    r = run("topology", "show", "--db", db, cwd=tmp_path)
    assert "uplink 10 Mbit/s each way, admits 7.5 Mbit/s" in r.stdout
    r = run("capacity", "--db", db, cwd=tmp_path)
    county = [line for line in r.stdout.splitlines() if line.startswith("county 10 Mbit/s") and " sd " in line]
    assert len(county) == 1 and " both " in county[0]
