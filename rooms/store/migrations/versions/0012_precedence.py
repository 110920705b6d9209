"""session.precedence and user.permissions: emergencies outrank routine sessions, and only people
granted the `emergency` permission may open them

Revision ID: 0012_precedence
Revises: 0011_sequence
"""
from alembic import op
import sqlalchemy as sa

revision = "0012_precedence"
down_revision = "0011_sequence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.add_column(sa.Column("precedence", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("permissions", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.drop_column("permissions")
    with op.batch_alter_table("session") as batch:
        batch.drop_column("precedence")
