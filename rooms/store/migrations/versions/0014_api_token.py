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
    raise NotImplementedError("tokens cannot move back to one per user without losing some")
