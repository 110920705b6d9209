"""`make run`: the demo network on SQLite, one demo user per role, then `confctl serve`.

Tokens are stored only as hashes, so the demo users are recreated on every
run and their fresh tokens printed.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys

from rooms.store.bookings import BookingStore
from rooms.store.engine import make_engine
from rooms.store.migrate import upgrade
from rooms.store.sip import SipStore
from rooms.store.users import Role, UserStore
from rooms.topology import demo_topology

DEMO_USERS = [
    ("demo-organizer", Role.ORGANIZER, None),
    ("demo-technician", Role.TECHNICIAN, "cc-nongan"),
    ("demo-operator", Role.OPERATOR, None),
    ("demo-admin", Role.ADMIN, None),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", default="sqlite:///var/demo.db")
    p.add_argument("--host", default=os.environ.get("CONFCTL_HOST", "127.0.0.1"))
    p.add_argument("--port", default=os.environ.get("CONFCTL_PORT", "8080"))
    p.add_argument("--sip-port", default=os.environ.get("CONFCTL_SIP_PORT", "5060"))
    args = p.parse_args()
    engine = make_engine(args.db)
    upgrade(engine)
    store = BookingStore(engine)
    if not store.has_topology():
        store.set_topology(demo_topology())
    sites = set(store.topology().sites)
    users = UserStore(engine)
    base = f"http://{args.host}:{args.port}"
    print(f"\nconfctl demo: Jilin network ({len(sites)} sites), database {args.db}\n")
    print(f"  booking page   {base}/book")
    print(f"  REST API       {base}/api   (OpenAPI: {base}/api/openapi.json)\n")
    print("  demo users (paste a token into the booking page, or send Authorization: Bearer TOKEN):")
    for name, role, site in DEMO_USERS:
        users.remove_named(name)
        user, token = users.add(name, role, site, sites)
        print(f"    {role.value:<11} {name:<16} {('site ' + site) if site else '':<16} {token}")
    sip = SipStore(engine)
    sip.remove_account("demo-phone")  # recreated with a fresh password on every run, like the demo users
    password = secrets.token_urlsafe(12)
    sip.add_account("demo-phone", "cc-nongan", password, "confctl")
    print(f"\n  SIP: udp {args.host}:{args.sip_port}, phone account demo-phone (site cc-nongan), password {password}")
    print(f"\n  try: curl -H 'Authorization: Bearer <organizer token>' {base}/api/capacity?plan=cascade\n", flush=True)
    engine.dispose()
    confctl = os.path.join(os.path.dirname(sys.executable), "confctl")
    os.execv(confctl, [confctl, "serve", "--db", args.db, "--host", args.host, "--port", str(args.port),
                       "--sip-port", str(args.sip_port)])


if __name__ == "__main__":
    main()
