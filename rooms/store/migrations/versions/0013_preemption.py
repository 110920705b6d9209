"""preemption: every degrade, drop and restoration an emergency caused, for the sessions' history

Revision ID: 0013_preemption
Revises: 0012_precedence
"""
from alembic import op
import sqlalchemy as sa

revision = "0013_preemption"
down_revision = "0012_precedence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preemption",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("emergency_id", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("link", sa.String(100), nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("step", sa.String(20), nullable=False),
        sa.Column("from_kbps", sa.Integer(), nullable=False),
        sa.Column("to_kbps", sa.Integer(), nullable=False),
        sa.Column("sites", sa.Text(), nullable=False),
    )
    op.create_index("ix_preemption_at", "preemption", ["at"])
    op.create_index("ix_preemption_emergency_id", "preemption", ["emergency_id"])
    op.create_index("ix_preemption_session_id", "preemption", ["session_id"])


def downgrade() -> None:
    op.drop_table("preemption")
