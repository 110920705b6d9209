"""media_node: what its beats taught us (interval mean and variance), its last beat to the millisecond,
and since when it is judged down (rooms/node_liveness.py)

Revision ID: 0015_node_liveness
Revises: 0014_api_token
"""
from alembic import op
import sqlalchemy as sa

revision = "0015_node_liveness"
down_revision = "0014_api_token"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_node") as batch:
        batch.add_column(sa.Column("last_seen_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("interval_mean_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("interval_var_s2", sa.Float(), nullable=True))
        batch.add_column(sa.Column("down_since", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_node") as batch:
        for c in ("down_since", "interval_var_s2", "interval_mean_s", "last_seen_ms"):
            batch.drop_column(c)
