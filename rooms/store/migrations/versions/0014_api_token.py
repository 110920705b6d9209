"""api_token: personal bearer tokens with an expiry, a last use and revocation; a sign-in remembers its token

Each user's one token moves from `user.token_hash` to its own row, expiring 90 days after this upgrade
(so no deployed token stops working at once). `web_session.token_id` lets a revocation end the
browser sessions signed in with that token.

Revision ID: 0014_api_token
Revises: 0013_preemption
"""
import time

from alembic import op
import sqlalchemy as sa

revision = "0014_api_token"
down_revision = "0013_preemption"
branch_labels = None
depends_on = None

MIGRATED_LIFETIME_S = 90 * 86400


def upgrade() -> None:
    token = op.create_table(
        "api_token",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_api_token_user_id", "api_token", ["user_id"])
    now = int(time.time())
    conn = op.get_bind()
    rows = conn.execute(sa.text('SELECT id, token_hash, created_at FROM "user"')).fetchall()
    if rows:
        op.bulk_insert(token, [{"id": f"tok_{r.id.removeprefix('usr_')[:24]}", "user_id": r.id,
                                "token_hash": r.token_hash, "label": "first token", "created_at": r.created_at,
                                "expires_at": now + MIGRATED_LIFETIME_S} for r in rows])
    with op.batch_alter_table("user") as batch:
        batch.drop_column("token_hash")
    with op.batch_alter_table("web_session") as batch:
        batch.add_column(sa.Column("token_id", sa.String(40), nullable=True))


def downgrade() -> None:
    """Back to one token per user: each keeps its newest live token; a user with none gets an unusable hash
    (a random value nobody holds), as the old schema requires one."""
    import secrets

    conn = op.get_bind()
    now = int(time.time())
    with op.batch_alter_table("web_session") as batch:
        batch.drop_column("token_id")
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("token_hash", sa.String(64), nullable=True))
    for (user_id,) in conn.execute(sa.text('SELECT id FROM "user"')).fetchall():
        row = conn.execute(sa.text("SELECT token_hash FROM api_token WHERE user_id = :u AND revoked_at IS NULL "
                                   "AND expires_at > :now ORDER BY created_at DESC LIMIT 1"),
                           {"u": user_id, "now": now}).first()
        conn.execute(sa.text('UPDATE "user" SET token_hash = :h WHERE id = :u'),
                     {"h": row.token_hash if row else secrets.token_hex(32), "u": user_id})
    with op.batch_alter_table("user") as batch:
        batch.alter_column("token_hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_user_token_hash", ["token_hash"])
    op.drop_index("ix_api_token_user_id", "api_token")
    op.drop_table("api_token")
