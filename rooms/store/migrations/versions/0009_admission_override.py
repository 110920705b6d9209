"""session.override_by / override_json: a booking an admin made past admission, and what it broke

Revision ID: 0009_override
Revises: 0008_node_load
"""
from alembic import op
import sqlalchemy as sa

revision = "0009_override"
down_revision = "0008_node_load"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.add_column(sa.Column("override_by", sa.String(40), nullable=True))
        batch.add_column(sa.Column("override_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.drop_column("override_json")
        batch.drop_column("override_by")
