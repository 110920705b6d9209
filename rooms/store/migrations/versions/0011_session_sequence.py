"""session.sequence: how many times a session changed, for its invites' SEQUENCE (RFC 5545 §3.8.7.4)

Revision ID: 0011_sequence
Revises: 0010_operations
"""
from alembic import op
import sqlalchemy as sa

revision = "0011_sequence"
down_revision = "0010_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.drop_column("sequence")
