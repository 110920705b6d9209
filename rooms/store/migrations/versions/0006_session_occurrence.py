"""session_occurrence replaces the per-link, per-room and per-node reservation rows

A booking wrote about 36 pages at commit (a row per link, room and node, each
in two indexes); now it writes its session row and one narrow row per
occurrence, and what a session holds is derived from its stored plan
(rooms/store/held.py). The unused session indexes on status and organizer go too.

Revision ID: 0006_occurrences
Revises: 0005_calls
"""
import json

from alembic import op
import sqlalchemy as sa

revision = "0006_occurrences"
down_revision = "0005_calls"
branch_labels = None
depends_on = None

_session = sa.table("session", sa.column("id", sa.String), sa.column("status", sa.String),
                    sa.column("occurrences_json", sa.Text), sa.column("plan_json", sa.Text),
                    sa.column("sites_json", sa.Text))


def upgrade() -> None:
    occurrence = op.create_table(
        "session_occurrence",
        sa.Column("start", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.Column("rev", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("start", "session_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("session") as batch:
        batch.add_column(sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0"))
        batch.drop_index("ix_session_status")
        batch.drop_index("ix_session_organizer_id")
    conn = op.get_bind()
    rows = [{"start": s, "session_id": r.id, "end": e, "rev": 0}
            for r in conn.execute(sa.select(_session.c.id, _session.c.occurrences_json).where(_session.c.status == "booked"))
            for s, e in json.loads(r.occurrences_json)]
    if rows:
        op.bulk_insert(occurrence, rows)
    for name in ("link_reservation", "room_reservation", "node_reservation"):
        op.drop_table(name)


# The reservation tables 0001 made, as (name, resource columns, amount column, index name).
_OLD_TABLES = (
    ("link_reservation", ("link_id", "direction"), "kbps", "ix_link_reservation_link_start"),
    ("node_reservation", ("node_id",), "legs", "ix_node_reservation_node_start"),
    ("room_reservation", ("site_id", "room_id"), None, "ix_room_reservation_site_start"),
)


def downgrade() -> None:
    tables = {}
    for name, resource, amount, index in _OLD_TABLES:
        columns = [sa.Column(c, sa.String(length=4 if c == "direction" else 100), nullable=False) for c in resource]
        if amount is not None:
            columns.append(sa.Column(amount, sa.Integer(), nullable=False))
        tables[name] = op.create_table(
            name, sa.Column("id", sa.Integer(), nullable=False), sa.Column("session_id", sa.String(length=40), nullable=False),
            *columns, sa.Column("start", sa.BigInteger(), nullable=False), sa.Column("end", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"))
        op.create_index(index, name, [resource[0], "start", "end"])
        op.create_index(f"ix_{name}_session_id", name, ["session_id"])
    link, room, node = tables["link_reservation"], tables["room_reservation"], tables["node_reservation"]
    conn = op.get_bind()
    links, rooms, nodes = [], [], []
    for r in conn.execute(sa.select(_session).where(_session.c.status == "booked")):
        plan, sites = json.loads(r.plan_json), json.loads(r.sites_json)
        for s, e in json.loads(r.occurrences_json):
            links += [{"session_id": r.id, "link_id": l["link"], "direction": d, "start": s, "end": e, "kbps": l[f"{d}_kbps"]}
                      for l in plan["links"] for d in ("up", "down")]
            rooms += [{"session_id": r.id, "site_id": x["site"], "room_id": x["room"], "start": s, "end": e} for x in sites]
            nodes += [{"session_id": r.id, "node_id": n, "start": s, "end": e, "legs": legs}
                      for n, legs in plan["node_legs"].items()]
    for table, rows in ((link, links), (room, rooms), (node, nodes)):
        if rows:
            op.bulk_insert(table, rows)
    with op.batch_alter_table("session") as batch:
        batch.drop_column("revision")
        batch.create_index("ix_session_status", ["status"])
        batch.create_index("ix_session_organizer_id", ["organizer_id"])
    op.drop_table("session_occurrence")
