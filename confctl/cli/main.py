"""`confctl`: serve, users, topology, book, sessions, capacity, db.

Every command that touches data takes --db URL. Errors print one clear line
to stderr and exit non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Callable

from confctl.config import DB_ENV, Settings, chosen_db, default_db_url
from harness.wan import WanError as HarnessError
from rooms.admission import Accepted, RequestError
from rooms.booking_form import BookingBody, FormError, to_request
from rooms.capacity import capacity, format_capacity
from rooms.ids import PlanKind, SiteId
from rooms.store.bookings import BookingStore, DialInExhausted, NoTopology, NotFound, SessionCancelled
from rooms.store.engine import DatabaseUrlError, make_engine
from rooms.store.migrate import upgrade
from rooms.store.tokens import DEFAULT_TOKEN_DAYS, TokenError
from rooms.store.users import Role, UserError, UserStore
from rooms.topology import Topology, TopologyError, demo_topology_path, load_topology_file


class CliError(Exception):
    pass


NO_TOPOLOGY = ("the database {db} has no topology: load one with `confctl topology load FILE` "
               "(the demo network is {demo}; `make run` loads it)")


NODE_TOKEN_DAYS = 365  # a node runs unattended: a year, rotated with `confctl tokens rotate`
DEFAULT_URL = "http://127.0.0.1:8080"  # where `confctl serve` and `make run` listen; join links point there


def db_url(args: argparse.Namespace) -> str:
    """The database this command uses: --db, $CONFCTL_DB, or the default every command and `make run` share
    (resolved in main(), the same from any directory). A SQLite file is only created in a folder that exists
    (the default's folder, in the user's data directory, is made)."""
    url = args.db
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = Path(url[len("sqlite:///"):]).parent
        if url == default_db_url():
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise CliError(f"--db {url}: the folder {folder} does not exist (a typo would otherwise make a new, "
                           "empty database)")
    return url


def _store(args: argparse.Namespace, need_topology: bool = True) -> BookingStore:
    engine = make_engine(db_url(args))
    upgrade(engine)
    store = BookingStore(engine)
    if need_topology and not store.has_topology():
        raise CliError(NO_TOPOLOGY.format(db=args.db, demo=demo_topology_path()))
    return store


def cmd_serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from confctl import log_setup
    from confctl.access_log import RedactingAccessLogger
    from confctl.app import make_app
    log_setup.configure()
    if not 0 <= args.sip_workers <= 64:
        raise CliError("--sip-workers: 0 to 64 processes")
    if not 1 <= args.sip_rtp_timeout <= 3600:
        raise CliError("--sip-rtp-timeout: 1 to 3600 seconds")
    smtp = None
    if args.smtp:
        from confctl.invite_mail import SmtpUrlError, parse_smtp_url
        try:
            smtp = parse_smtp_url(args.smtp, os.environ)
        except SmtpUrlError as exc:
            raise CliError(str(exc)) from None
    args.db = db_url(args)
    if args.topology:
        load_topology_file(args.topology)  # fail fast on a bad file, before binding
    else:
        engine = make_engine(args.db)
        upgrade(engine)
        has = BookingStore(engine).has_topology()
        engine.dispose()
        if not has:
            raise CliError(f"the database {args.db} has no topology: give --topology FILE "
                           f"(the demo network: --topology {demo_topology_path()}, or `make run`)")
    alarms = Path(args.alarms) if args.alarms else None
    if alarms is not None:
        from monitoring.alarm_config import AlarmConfigError, load_config
        try:
            load_config(alarms)  # fail fast on a malformed file; site names are checked as the app starts
        except AlarmConfigError as exc:
            raise CliError(f"--alarms: {exc}") from None
    ssl_context = _tls(args)
    if args.public_url:
        from confctl.public_origin import PublicUrlError, parse_public_url
        try:
            parse_public_url(args.public_url)
        except PublicUrlError as exc:
            raise CliError(str(exc)) from None
    settings = Settings(db_url=args.db, topology_file=Path(args.topology) if args.topology else None, smtp=smtp,
                        host=args.host, port=args.port, alarms_file=alarms,
                        horizon_days=args.horizon_days, sip_port=args.sip_port or None, sip_host=args.host,
                        sip_advertise=args.sip_advertise or None, sip_rtp_timeout_s=args.sip_rtp_timeout,
                        sip_digest=tuple(a.strip().upper() for a in args.sip_digest.split(",")),
                        sip_workers=args.sip_workers, public_url=args.public_url.rstrip("/") if args.public_url else None,
                        ice_advertise=_address(args.advertise), ice_ports=_ports(args.ice_ports, "--ice-ports"),
                        rtp_ports=_ports(args.rtp_ports, "--rtp-ports"), police_sources=args.police_sources,
                        instance_id=args.instance_id or f"cp-{socket.gethostname()}-{args.port}")
    scheme = "https" if ssl_context else "http"
    serving = (f"confctl serving on {scheme}://{args.host}:{args.port}/"
               f"{f'  (browsers reach it at {settings.public_url})' if settings.public_url else ''}"
               f"  (database {redacted(args.db)})")
    # aiohttp calls `print` once the app has started and the socket listens: the URL is said when it answers
    web.run_app(make_app(settings), host=args.host, port=args.port, ssl_context=ssl_context,
                print=lambda _: print(serving, flush=True), access_log_class=RedactingAccessLogger)


def _tls(args: argparse.Namespace) -> Any:
    """The server's TLS context from --tls-cert/--tls-key (both or neither), or None for plain HTTP."""
    if not args.tls_cert and not args.tls_key:
        return None
    if not (args.tls_cert and args.tls_key):
        raise CliError("--tls-cert and --tls-key go together (a PEM certificate and its key)")
    from media.tls import TlsSetupError, server_context
    try:
        return server_context(Path(args.tls_cert), Path(args.tls_key))
    except TlsSetupError as exc:
        raise CliError(str(exc)) from None


def _ports(text: str | None, flag: str) -> Any:
    if not text:
        return None
    from media.port_range import PortRange
    try:
        return PortRange.parse(text)
    except ValueError as exc:
        raise CliError(f"{flag} {exc}") from None


def _address(text: str | None) -> str | None:
    """--advertise: an IP address (ICE candidates carry addresses, not names)."""
    if not text:
        return None
    import ipaddress
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise CliError(f"--advertise {text!r}: give the IP address browsers and other nodes reach this host at "
                       "(ICE candidates carry addresses, not names)") from None


def redacted(url: str) -> str:
    """A database URL with its password replaced: startup lines and logs are read by many."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: said as given, the engine refuses it with its own words
        return url


def _node_token(args: argparse.Namespace) -> str:
    """The node's token: --token-file or $CONFCTL_NODE_TOKEN (never the command line: `ps` shows it to all)."""
    if args.token:
        print("confctl media-node: warning: --token puts the token where every local user's `ps` reads it; "
              "use CONFCTL_NODE_TOKEN or --token-file", file=sys.stderr, flush=True)
        return args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise CliError(f"--token-file {args.token_file}: {exc.strerror or exc}") from None
        if not token:
            raise CliError(f"--token-file {args.token_file}: the file is empty")
        return token
    token = os.environ.get("CONFCTL_NODE_TOKEN", "").strip()
    if not token:
        raise CliError("a media node needs its node token: set CONFCTL_NODE_TOKEN or give --token-file FILE "
                       "(`confctl nodes add NODE_ID` prints one)")
    return token


def cmd_media_node(args: argparse.Namespace) -> None:
    from aiohttp import web

    from media.node_server import make_node_app
    from media.aiortc_hooks import IceAddressing, use_ice_addressing
    from media.port_range import UdpPorts

    from confctl import log_setup
    from confctl.access_log import RedactingAccessLogger
    log_setup.configure()
    token = _node_token(args)
    ssl_context = _tls(args)
    advertise, ice_ports = _address(args.advertise), _ports(args.ice_ports, "--ice-ports")
    if not args.control.startswith(("http://", "https://")):
        raise CliError(f"--control {args.control!r}: the control plane's URL, e.g. https://confctl.example:8443")
    where = advertise or args.host
    if not args.public_url and where in ("0.0.0.0", "::"):
        raise CliError("with --host 0.0.0.0, say where browsers reach this node: --advertise ADDR or --public-url URL")
    host = f"[{where}]" if ":" in where else where
    public = (args.public_url or f"{'https' if ssl_context else 'http'}://{host}:{args.port}").rstrip("/")
    if advertise is not None or ice_ports is not None:
        use_ice_addressing(IceAddressing(advertise, UdpPorts(ice_ports)))
    print(f"media node {args.id} serving on {public}, control plane {args.control}"
          + (f", ICE {advertise or 'every interface'} ports {ice_ports or 'any'}" if advertise or ice_ports else ""),
          flush=True)
    web.run_app(make_node_app(args.control, token, args.id, public, Path(args.recordings)),
                host=args.host, port=args.port, print=None, ssl_context=ssl_context,
                access_log_class=RedactingAccessLogger)  # /figures and /health, every few seconds: DEBUG


def cmd_users_add(args: argparse.Namespace) -> None:
    store = _store(args)
    users = UserStore(store.engine)
    if args.role == Role.NODE.value:
        raise CliError("a media node's credential is bound to its node id: `confctl nodes add NODE_ID`")
    user, token = users.add(args.name, Role(args.role), SiteId(args.site) if args.site else None, set(store.topology().sites),
                            tuple(args.permission or ()), days=args.days, email=args.email)
    print(f"created {user.role.value} {user.name} ({user.id}){' at ' + user.site if user.site else ''}"
          f"{', ' + user.email if user.email else ''}")
    print(token)


def cmd_users_email(args: argparse.Namespace) -> None:
    """Sets or clears where a user's invites are mailed."""
    if bool(args.address) == args.clear:
        raise CliError("give an address, or --clear to remove theirs")
    store = _store(args, need_topology=False)
    user = UserStore(store.engine).set_email(_user_named(store, args.name).id, args.address)
    print(f"{user.name}: invites go to {user.email}" if user and user.email else f"{args.name}: no address, no invites mailed")


def cmd_sip_add(args: argparse.Namespace) -> None:
    from rooms.store.sip import SipStore
    store = _store(args)
    if args.site not in store.topology().sites:
        raise CliError(f"site {args.site!r} is not in the topology")
    acc = SipStore(store.engine).add_account(args.username, args.site, args.password, args.realm)
    print(f"SIP account {acc.username} at site {acc.site} (realm {acc.realm})")


def cmd_sip_list(args: argparse.Namespace) -> None:
    from rooms.store.sip import SipStore
    for acc in SipStore(_store(args).engine).accounts():
        print(f"{acc.username:<20} {acc.site}")


def cmd_dial_out(args: argparse.Namespace) -> None:
    """Through the running service's API: the call is placed by its SIP service."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{args.url.rstrip('/')}/api/sessions/{args.session}/dial-out", method="POST",
                                 data=json.dumps({"account": args.account}).encode(),
                                 headers={"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}")
        raise CliError(f"dial-out refused ({exc.code}): {detail.get('detail') or detail.get('error')}") from None
    except urllib.error.URLError as exc:
        raise CliError(f"cannot reach {args.url}: {exc.reason}") from None
    print(f"calling {args.account} into {args.session}: call {body['call_id']}")


def _user_named(store: BookingStore, name: str) -> Any:
    user = UserStore(store.engine).by_name(name)
    if user is None:
        raise CliError(f"no user named {name!r} (`confctl users list` lists them)")
    return user


def _when(epoch: int | None) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M") if epoch else "-"


def cmd_tokens_list(args: argparse.Namespace) -> None:
    from rooms.store.tokens import ApiTokens
    store = _store(args, need_topology=False)
    rows = ApiTokens(store.engine).list(_user_named(store, args.user).id if args.user else None)
    now = int(time.time())
    print(f"{'id':<22} {'user':<20} {'label':<16} {'created':<16} {'expires':<16} {'last used':<16} state")
    for r in rows:
        state = "revoked" if r["revoked_at"] else "expired" if r["expires_at"] <= now else "live"
        print(f"{r['id']:<22} {r['user']:<20} {r['label'][:16]:<16} {_when(r['created_at']):<16} "
              f"{_when(r['expires_at']):<16} {_when(r['last_used_at']):<16} {state}")
    print(f"{len(rows)} token(s)")


def cmd_tokens_issue(args: argparse.Namespace) -> None:
    from rooms.store.tokens import ApiTokens
    store = _store(args, need_topology=False)
    user = _user_named(store, args.user)
    token_id, token = ApiTokens(store.engine).issue(user.id, int(time.time()), args.days, args.label)
    print(f"issued {token_id} for {user.name}, valid {args.days or DEFAULT_TOKEN_DAYS} days")
    print(token)


def cmd_tokens_rotate(args: argparse.Namespace) -> None:
    from rooms.store.tokens import ApiTokens
    token_id, token = ApiTokens(_store(args, need_topology=False).engine).rotate(args.id, int(time.time()), args.days)
    print(f"{args.id} revoked; {token_id} in its place" + (f", valid {args.days} days" if args.days else
                                                            ", for as long as the old one was made for"))
    print(token)


def cmd_tokens_revoke(args: argparse.Namespace) -> None:
    from rooms.store.tokens import ApiTokens
    if bool(args.id) == bool(args.user):
        raise CliError("give a token id, or --user NAME for every token of a user")
    store = _store(args, need_topology=False)
    tokens = ApiTokens(store.engine)
    if args.user:
        n = tokens.revoke_user(_user_named(store, args.user).id, int(time.time()))
        print(f"revoked {n} token(s) of {args.user}; their browser sessions ended")
    elif tokens.revoke(args.id, int(time.time())):
        print(f"revoked {args.id}; browser sessions signed in with it ended")
    else:
        raise CliError(f"no live token {args.id} (`confctl tokens list` shows ids and states)")


def cmd_nodes_add(args: argparse.Namespace) -> None:
    store = _store(args)
    topo = store.topology()
    if args.node_id not in topo.nodes:
        raise CliError(f"{args.node_id!r} is not a media node of the topology; its nodes are {sorted(topo.nodes)}")
    user, token = UserStore(store.engine).add(args.node_id, Role.NODE, None, set(topo.sites),
                                              days=args.days or NODE_TOKEN_DAYS)
    print(f"node credential for {args.node_id} ({user.id}): registers as {args.node_id} only")
    print(token)


def cmd_users_list(args: argparse.Namespace) -> None:
    for u in UserStore(_store(args).engine).list():
        print(f"{u.id}  {u.name:<20} {u.role.value:<11} {u.site or '':<14} {u.email or ''}".rstrip())


def print_tree(topo: Topology) -> None:
    def walk(site: SiteId, depth: int) -> None:
        s = topo.sites[site]
        link = topo.links.get(site)  # type: ignore[call-overload]
        rate = (f"  [uplink {link.rate_kbps / 1000:g} Mbit/s each way, admits {link.limit_kbps / 1000:g} Mbit/s"
                f"{f', {s.rtt_ms} ms round trip' if s.rtt_ms else ''}]" if link else "")
        node = "  (media node)" if any(n.site == site for n in topo.nodes.values()) else ""
        print(f"{'  ' * depth}{s.id}  {s.name}{rate}{node}  rooms: {', '.join(r.id for r in s.rooms)}")
        for c in topo.children[site]:
            walk(c, depth + 1)
    print(f"{topo.name or topo.network}: {len(topo.sites)} sites, {len(topo.links)} links, {len(topo.nodes)} media nodes")
    walk(topo.root, 0)


def cmd_topology_show(args: argparse.Namespace) -> None:
    topo = load_topology_file(args.file) if args.file else _store(args).topology()
    print_tree(topo)


def cmd_topology_load(args: argparse.Namespace) -> None:
    topo = load_topology_file(args.file)
    change = _store(args, need_topology=False).set_topology(topo)
    if not change.applied:
        lines = [f"  {b['session']} {b['title']!r}: {b['reason']}" for b in change.broken]
        raise CliError(f"refused: {len(change.broken)} future session(s) would no longer fit:\n" + "\n".join(lines))
    print(f"loaded {args.file}: {len(topo.sites)} sites, {len(topo.links)} links (topology version {change.version})")


def _join_urls(store: BookingStore, session: dict[str, Any], base: str) -> dict[str, str]:
    from confctl.join_tokens import mint
    from rooms.store.secrets import shared_secret
    secret = shared_secret(store.engine, "join_token")
    return {s["site"]: f"{base.rstrip('/')}/join?token={mint(secret, session['id'], s['site'])}" for s in session["sites"]}


def _print_session(store: BookingStore, session: dict[str, Any], base: str, verb: str = "") -> None:
    names = {k: v.name for k, v in store.topology().sites.items()}
    print(f"{verb + ' ' if verb else ''}{session['id']}: {session['title']} ({session['status']})")
    print(f"  when     {session['start']} .. {session['end']}"
          + (f"  repeats {session['recurrence']} ({len(session['occurrences'])} times)" if session["recurrence"] else ""))
    print(f"  host     {names.get(session['host_site'], session['host_site'])}")
    print(f"  profile  {session['profile']}, plan {session['plan']}{', recorded' if session['record'] else ''}")
    print(f"  dial-in  {session.get('dial_in') or '-'}")
    if session["status"] == "booked":
        print("  join links:")
        for site, url in _join_urls(store, session, base).items():
            print(f"    {names.get(site, site):<34} {url}")
    print("  link loads (kbit/s, of the link's admitted limit):")
    for l in session["media_plan"]["links"]:
        print(f"    {l['link']:<16} up {l['up_kbps']:>6} down {l['down_kbps']:>6} of {l['limit_kbps']}")


def _print_refusal(view: dict[str, Any]) -> None:
    print("refused:")
    for v in view["violations"]:
        where = f"link {v['link']} {v['direction']} ({v['from']} -> {v['to']})" if v["kind"] == "link" else \
            f"room {v.get('site')}/{v.get('room')}" if v["kind"] == "room" else f"media node {v.get('node')}"
        extra = f": needs {v['demand_kbps']} kbit/s, {v['available_kbps']} free" if v["kind"] == "link" else ""
        print(f"  {where} {v['start']} .. {v['end']}{extra}")
    for a in view["alternatives"]:
        print("  would fit: " + ", ".join(f"{k}={v}" for k, v in a.items()))


WRITERS = (Role.ORGANIZER, Role.ADMIN)  # who may book and change sessions, as in the API


def _acting_user(store: BookingStore, args: argparse.Namespace, doing: str) -> Any:
    """--as NAME: the user a session write is made and recorded as, checked against the users table and the
    API's rules (organizers and admins book; organizers change only their own). Never a free-text id."""
    if not args.as_user:
        raise CliError(f"{doing} as a named user: --as NAME (an organizer or admin; `confctl users list` lists them)")
    user = UserStore(store.engine).by_name(args.as_user)
    if user is None:
        raise CliError(f"--as {args.as_user}: no such user in {redacted(args.db)} (`confctl users list` lists them)")
    if user.role not in WRITERS:
        raise CliError(f"--as {args.as_user}: a {user.role.value} may not {doing} (organizers and admins may)")
    return user


def _may_change(user: Any, session: dict[str, Any]) -> None:
    if user.role is not Role.ADMIN and session["organizer_id"] != user.id:
        raise CliError(f"--as {user.name}: {session['id']} is another organizer's session (they or an admin may "
                       "change it)")


def cmd_book(args: argparse.Namespace) -> None:
    try:
        body = BookingBody(title=args.title, host_site=args.host, sites=args.site or [], start=args.start, end=args.end,
                           profile=args.profile, plan=args.plan, recurrence=args.recurrence, record=args.record)
    except Exception as exc:
        raise CliError(str(exc)) from None
    req, meta = to_request(body, datetime.now(timezone.utc))
    store = _store(args)
    out = store.check(req) if args.dry_run else store.book(req, meta, _acting_user(store, args, "book").id)
    from confctl.api.views import decision_view
    view = decision_view(out, meta)
    if args.json:
        doc = out.session or view
        if out.session is not None:
            doc = {**out.session, "join_urls": _join_urls(store, out.session, args.url)}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif isinstance(out.decision, Accepted) and args.dry_run:
        print(f"fits: {body.title}")
        for l in view["media_plan"]["links"]:
            print(f"  {l['link']:<16} up {l['up_kbps']:>6} down {l['down_kbps']:>6} of {l['limit_kbps']} kbit/s")
    elif isinstance(out.decision, Accepted):
        _print_session(store, out.session, args.url, "booked")  # type: ignore[arg-type]
    else:
        _print_refusal(view)
    if not isinstance(out.decision, Accepted):
        sys.exit(3)


def cmd_sessions_show(args: argparse.Namespace) -> None:
    store = _store(args)
    session = store.get(args.id)
    if args.json:
        doc = {**session, "join_urls": _join_urls(store, session, args.url) if session["status"] == "booked" else {}}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print_session(store, session, args.url)


def cmd_sessions_cancel(args: argparse.Namespace) -> None:
    store = _store(args)
    user = _acting_user(store, args, "cancel sessions")
    _may_change(user, store.get(args.id))
    session = store.cancel(args.id)
    print(f"cancelled {session['id']}: {session['title']} ({session['start']})")


def cmd_sessions_edit(args: argparse.Namespace) -> None:
    from rooms.booking_form import BookingPatch, patched_body
    changes = {k: v for k, v in (("title", args.title), ("host_site", args.host), ("sites", args.site),
                                 ("start", args.start), ("end", args.end), ("profile", args.profile),
                                 ("plan", args.plan)) if v is not None}
    if not changes:
        raise CliError("nothing to change: give --title, --host, --site, --start, --end, --profile or --plan")
    store = _store(args)
    user = _acting_user(store, args, "change sessions")
    session = store.get(args.id)
    _may_change(user, session)
    try:
        body = patched_body(session, BookingPatch(**changes))
    except Exception as exc:
        raise CliError(str(exc)) from None
    req, meta = to_request(body, datetime.now(timezone.utc))
    out = store.update(args.id, req, meta)
    if not isinstance(out.decision, Accepted):
        from confctl.api.views import decision_view
        print("not changed:", end=" ")
        _print_refusal(decision_view(out, meta))
        sys.exit(3)
    _print_session(store, out.session, args.url, "changed")  # type: ignore[arg-type]


def cmd_db_which(args: argparse.Namespace) -> None:
    """Which database, and why: a question, so a SQLite file that is not there yet is not made."""
    url = db_url(args)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        print(f"{redacted(url)}  ({args.db_source}; not created yet: the first command that writes makes it)")
        return
    engine = make_engine(url)
    upgrade(engine)
    store = BookingStore(engine)
    topo = store.topology() if store.has_topology() else None
    print(f"{redacted(url)}  ({args.db_source}; topology: {topo.name or topo.network if topo else 'none'}; "
          f"{len(store.list())} booked session(s))")


def cmd_sessions_list(args: argparse.Namespace) -> None:
    from confctl.api.sessions import parse_instant
    start = int(parse_instant(args.from_, "--from").timestamp()) if args.from_ else None
    end = int(parse_instant(args.to, "--to").timestamp()) if args.to else None
    store = _store(args)
    if args.site is not None and args.site not in store.topology().sites:
        raise CliError(f"--site {args.site}: no such site in the topology (`confctl topology show` lists them)")
    rows = store.list(start, end, args.site)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if rows:
        print(f"{'id':<20}  {'start':<25}    {'end':<14}  {'profile':<7} {'plan':<7} {'dial-in':<8} {'title'}  [sites]")
    for s in rows:
        sites = ",".join(x["site"] for x in s["sites"])
        print(f"{s['id']:<20}  {s['start']:<25} .. {s['end'][11:]:<14}  {s['profile']:<7} {s['plan']:<7} "
              f"{s.get('dial_in') or '-':<8} {s['title']}  [{sites}]")
    print(f"{len(rows)} session(s)")


def cmd_capacity(args: argparse.Namespace) -> None:
    if args.measure:
        from harness.cli import measure_capacity
        measure_capacity(args)
        return
    topo = load_topology_file(args.topology) if args.topology else _store(args).topology()
    if args.profile and topo.profile(args.profile) is None:
        raise CliError(f"unknown profile {args.profile!r}; known: {[p.name for p in topo.profiles]}")
    rows = capacity(topo, [args.profile] if args.profile else None, [PlanKind(args.plan)] if args.plan else None,
                    args.sites_below)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_capacity(rows))


def cmd_dryrun(args: argparse.Namespace) -> None:
    from harness.dry_run import cmd_dryrun as run
    store = _store(args)
    store.get(args.session)  # NotFound: a clear line before any namespace is made
    if not 5 <= args.seconds <= 3600:
        raise CliError("--seconds: between 5 and 3600")
    store.engine.dispose()
    sys.exit(run(args.db, args.session, args.seconds, args.json))


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    upgrade(make_engine(db_url(args)))
    print(f"{redacted(args.db)}: schema up to date")


def _deployment_flags(s: argparse.ArgumentParser, whose: str) -> None:
    """TLS and the media addressing a firewall is told about (docs/deploy.md)."""
    s.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS and WSS with this PEM certificate (chain after it)")
    s.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM key")
    s.add_argument("--advertise", metavar="ADDR", help=f"the only address {whose} ICE candidates carry (the address "
                   "browsers and other nodes reach, e.g. behind NAT); sockets then bind on every interface")
    s.add_argument("--ice-ports", metavar="LO-HI", help=f"UDP range every socket of {whose} legs and trunks binds "
                   "in (e.g. 40000-40999); a leg finding it full is refused and counted in /metrics")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="confctl", description="Book and run HD video conferences across the province.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], None], help: str, parent: Any = sub, db: bool = True) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help, description=help)
        if db:
            sp.add_argument("--db", default=None,
                            help=f"database URL (default ${DB_ENV}, else {default_db_url()}, wherever it runs from; "
                            "the variable keeps a password out of ps; `confctl db which` says which)")
        sp.set_defaults(fn=fn)
        return sp

    s = add("serve", cmd_serve, "run the control plane (API, pages)")
    s.add_argument("--topology", help="topology file loaded if the database has none (required then)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--horizon-days", type=int, default=7, help="how far ahead a refusal looks for a later start")
    s.add_argument("--alarms", metavar="FILE", help="alarm thresholds and webhooks (YAML; monitoring/alarm_config.py)")
    s.add_argument("--sip-port", type=int, default=5060, help="UDP port of the SIP service (0: no SIP)")
    s.add_argument("--sip-advertise", help="the address phones reach this host at, for SDP and Contact "
                   "(default: --host, or with --host 0.0.0.0 the interface that routes to each phone)")
    s.add_argument("--sip-rtp-timeout", type=float, default=30.0,
                   help="seconds without RTP from a phone before its call is hung up (default 30)")
    s.add_argument("--sip-digest", default="MD5", choices=["MD5", "SHA-256,MD5", "SHA-256"],
                   help="digest algorithms challenged, preferred first (MD5 alone suits most deployed phones)")
    s.add_argument("--sip-workers", type=int, default=2, metavar="N",
                   help="processes beside this one that read the SIP socket and answer REGISTER and OPTIONS, "
                        "for registration storms (default 2; 0: this process alone)")
    s.add_argument("--public-url", help="the URL browsers reach this control plane at, when a reverse proxy "
                   "terminates TLS (e.g. https://confctl.example): join links name it, and with https:// the sign-in "
                   "cookie is Secure and pages carry Strict-Transport-Security")
    s.add_argument("--rtp-ports", metavar="LO-HI", help="UDP range for the SIP gateway's RTP sockets (default: any)")
    s.add_argument("--police-sources", action="store_true",
                   help="hold each site's camera to its reserved video rate: REMB, and whole frames dropped above it "
                        "(policed cameras take the Python forwarding path)")
    s.add_argument("--instance-id", help="this control plane's name among several on one database "
                   "(default cp-HOSTNAME-PORT): its partial recordings and its SIP gateway's links carry it")
    s.add_argument("--smtp", metavar="URL", help="mail invites through this relay: smtp://HOST[:PORT] (no TLS), "
                   "smtp+starttls://HOST[:587] or smtps://HOST[:465]; USER@HOST or $CONFCTL_SMTP_USER, the password "
                   "in $CONFCTL_SMTP_PASSWORD; ?from=ADDR the sender (default: no invites are mailed)")
    _deployment_flags(s, "its in-process media node's")

    s = add("media-node", cmd_media_node, "run a media node as its own process, registered with a control plane",
            db=False)
    s.add_argument("--control", required=True, help="the control plane's URL, e.g. http://127.0.0.1:8080")
    s.add_argument("--token-file", metavar="FILE", help="a file holding the node token (`confctl nodes add NODE_ID`); "
                   "or set CONFCTL_NODE_TOKEN")
    s.add_argument("--token", help=argparse.SUPPRESS)  # still read, with a warning: `ps` shows it to every local user
    s.add_argument("--id", default="node-jl", help="node id; match the topology's node ids (node-<site>)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9000)
    s.add_argument("--public-url", help="URL sites and the control plane reach this node at")
    s.add_argument("--recordings", default="var/recordings",
                   help="where recorded sessions are written: the control plane's folder, or storage it shares")
    _deployment_flags(s, "its")

    users = sub.add_parser("users", help="users and roles").add_subparsers(dest="users_cmd", required=True)
    s = add("add", cmd_users_add, "create a user; prints its token as the last line", users)
    s.add_argument("name")
    s.add_argument("--role", required=True, choices=[r.value for r in Role])
    s.add_argument("--site", help="the site a technician is bound to")
    s.add_argument("--permission", action="append", choices=["emergency"],
                   help="emergency: may open sessions above routine precedence (the duty officer)")
    s.add_argument("--days", type=int, help=f"how long its token lives (default {DEFAULT_TOKEN_DAYS})")
    s.add_argument("--email", metavar="ADDR", help="where their invites are mailed (confctl serve --smtp)")
    s = add("email", cmd_users_email, "set (or --clear) where a user's invites are mailed", users)
    s.add_argument("name")
    s.add_argument("address", nargs="?")
    s.add_argument("--clear", action="store_true", help="remove their address: no invites mailed to them")
    add("list", cmd_users_list, "list users", users)

    tokens = sub.add_parser("tokens", help="personal bearer tokens: expiry, last use, revocation").add_subparsers(
        dest="tokens_cmd", required=True)
    s = add("list", cmd_tokens_list, "list tokens (never the tokens themselves): whose, expiry, last use", tokens)
    s.add_argument("--user", help="one user's (by name)")
    s = add("issue", cmd_tokens_issue, "a new token for a user; prints it as the last line", tokens)
    s.add_argument("user", help="the user's name")
    s.add_argument("--days", type=int, help=f"how long it lives (default {DEFAULT_TOKEN_DAYS})")
    s.add_argument("--label", default="token", help="what it is for (a laptop, a script)")
    s = add("rotate", cmd_tokens_rotate, "a new token in place of one, which is revoked at once; prints the new one",
            tokens)
    s.add_argument("id", help="the token's id (tok_…, from `confctl tokens list`)")
    s.add_argument("--days", type=int, help="how long the new one lives (default: as long as the old one was made for)")
    s = add("revoke", cmd_tokens_revoke, "revoke a token, or every token of a user; their browser sessions end",
            tokens)
    s.add_argument("id", nargs="?", help="the token's id (tok_…)")
    s.add_argument("--user", help="every token of this user (by name)")

    nodes = sub.add_parser("nodes", help="media node credentials, one per node id").add_subparsers(
        dest="nodes_cmd", required=True)
    s = add("add", cmd_nodes_add, "a credential for one media node of the topology, refused for any other id; "
            "prints its token as the last line (give it to the node as CONFCTL_NODE_TOKEN)", nodes)
    s.add_argument("node_id", help="a node of the topology, e.g. node-cc")
    s.add_argument("--days", type=int, help="how long its token lives (default 365: rotate it yearly)")

    sip = sub.add_parser("sip-accounts", help="SIP accounts, each bound to a site").add_subparsers(
        dest="sip_cmd", required=True)
    s = add("add", cmd_sip_add, "create a SIP account (digest credentials)", sip)
    s.add_argument("username")
    s.add_argument("--site", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--realm", default="confctl")
    add("list", cmd_sip_list, "list SIP accounts", sip)

    s = add("dial-out", cmd_dial_out, "call a registered phone into a live session (through the API)", db=False)
    s.add_argument("session")
    s.add_argument("account", help="SIP account to call")
    s.add_argument("--url", default="http://127.0.0.1:8080", help="the control plane")
    s.add_argument("--token", required=True, help="bearer token of the organizer, an operator or an admin")

    topo = sub.add_parser("topology", help="the network").add_subparsers(dest="topology_cmd", required=True)
    s = add("show", cmd_topology_show, "print the site tree with link rates", topo)
    s.add_argument("file", nargs="?", help="show this file instead of the database's topology")
    s = add("load", cmd_topology_load, "replace the topology (refused while future bookings would break)", topo)
    s.add_argument("file")

    s = add("book", cmd_book, "book a session (exit 3 when refused)")
    s.add_argument("--title", required=True)
    s.add_argument("--host", required=True, help="host site (site or site/room)")
    s.add_argument("--site", action="append", help="a participating site or site/room; repeat")
    s.add_argument("--start", required=True, help="ISO 8601 with offset")
    s.add_argument("--end", required=True, help="ISO 8601 with offset")
    s.add_argument("--profile", default="hd720")
    s.add_argument("--plan", default="cascade", choices=["cascade", "central"])
    s.add_argument("--recurrence", help="RRULE with COUNT or UNTIL")
    s.add_argument("--record", action="store_true")
    as_help = "the user this runs as, by name (an organizer or admin; `confctl users list`)"
    s.add_argument("--as", dest="as_user", metavar="NAME", help=as_help + "; recorded as the organizer")
    s.add_argument("--dry-run", action="store_true", help="only show the decision")
    s.add_argument("--json", action="store_true")
    s.add_argument("--url", default=os.environ.get("CONFCTL_URL", DEFAULT_URL),
                   help=f"the service's address, for join links (default $CONFCTL_URL or {DEFAULT_URL})")

    sessions = sub.add_parser("sessions", help="booked sessions").add_subparsers(dest="sessions_cmd", required=True)
    s = add("list", cmd_sessions_list, "list booked sessions", sessions)
    s.add_argument("--from", dest="from_")
    s.add_argument("--to")
    s.add_argument("--site")
    s.add_argument("--json", action="store_true")
    url_help = f"the service's address, for join links (default $CONFCTL_URL or {DEFAULT_URL})"
    s = add("show", cmd_sessions_show, "one session: time, sites, dial-in, join links, link loads", sessions)
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.add_argument("--url", default=os.environ.get("CONFCTL_URL", DEFAULT_URL), help=url_help)
    s = add("cancel", cmd_sessions_cancel, "cancel a session (its links are free again)", sessions)
    s.add_argument("id")
    s.add_argument("--as", dest="as_user", metavar="NAME", help=as_help + "; an organizer cancels only their own")
    s = add("edit", cmd_sessions_edit, "change a session; admission is checked again (exit 3 when refused)", sessions)
    s.add_argument("id")
    s.add_argument("--as", dest="as_user", metavar="NAME", help=as_help + "; an organizer changes only their own")
    s.add_argument("--title")
    s.add_argument("--host", help="host site (site or site/room)")
    s.add_argument("--site", action="append", help="the participating sites, all of them (repeat)")
    s.add_argument("--start", help="ISO 8601 with offset")
    s.add_argument("--end", help="ISO 8601 with offset")
    s.add_argument("--profile")
    s.add_argument("--plan", choices=["cascade", "central"])
    s.add_argument("--url", default=os.environ.get("CONFCTL_URL", DEFAULT_URL), help=url_help)

    s = add("capacity", cmd_capacity, "concurrent sessions each link class admits, and which direction binds")
    s.add_argument("--profile")
    s.add_argument("--plan", choices=["central", "cascade"])
    s.add_argument("--sites-below", type=int, default=1, help="participants beneath each link in a session")
    s.add_argument("--topology", help="a topology file instead of the database's")
    s.add_argument("--json", action="store_true")
    m = s.add_argument_group("measured (--measure: synthetic HD streams over an emulated copy of the WAN; needs root)")
    m.add_argument("--measure", action="store_true", help="measure with real traffic instead of computing")
    m.add_argument("--select", default="cc", help="comma-separated sites whose uplinks are measured; a prefecture "
                   "brings one of its counties too (default cc: Changchun's backbone link and Nong'an's county link)")
    m.add_argument("--profiles", default="hd720,sd", help="comma-separated profiles (default hd720,sd)")
    m.add_argument("--plans", default="cascade,central", help="comma-separated plans (default cascade,central)")
    m.add_argument("--scale", type=float, default=0.1, help="factor for links above --scale-above (default 0.1)")
    m.add_argument("--scale-above", type=float, default=20, help="Mbit/s; slower links keep their rate (default 20)")
    m.add_argument("--window", type=float, default=10, help="seconds measured per step (default 10)")
    m.add_argument("--out", default="var/capacity", help="where report.md, report.html and plots go")
    m.add_argument("--cleanup", action="store_true", help="only remove namespaces a killed run left behind")

    s = add("dryrun", cmd_dryrun, "rehearse a booked session over the emulated WAN with synthetic sites and every "
            "other session at that time as background load (needs root); exit 0 pass, 1 fail")
    s.add_argument("session")
    s.add_argument("--seconds", type=float, default=60, help="how long the meeting is measured (default 60)")
    s.add_argument("--json", action="store_true")

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_cmd", required=True)
    add("upgrade", cmd_db_upgrade, "apply migrations", db)
    add("which", cmd_db_which, "print the database every data command uses here, and what it holds", db)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if hasattr(args, "db"):
        args.db, args.db_source = chosen_db(args.db)
    try:
        args.fn(args)
    except BrokenPipeError:  # `confctl ... | head`
        sys.stderr.close()
        sys.exit(0)
    except (CliError, TopologyError, RequestError, UserError, DatabaseUrlError, NotFound, NoTopology,
            SessionCancelled, DialInExhausted, ValueError, HarnessError, TokenError) as exc:  # SipAccountError is a ValueError
        detail = exc.detail if isinstance(exc, RequestError) and not isinstance(exc, FormError) else str(exc)
        if isinstance(exc, TopologyError):
            detail = "invalid topology:\n  " + "\n  ".join(exc.problems)
        print(f"confctl: {detail}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # database unreachable and the like: one line, not a traceback
        if type(exc).__module__.startswith("sqlalchemy"):
            print(f"confctl: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
