"""session.dial_in and call_record: dial-in numbers and a record of every SIP leg

Revision ID: 0005_calls
Revises: 0004_sip
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_calls"
down_revision = "0004_sip"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.add_column(sa.Column("dial_in", sa.String(length=12), nullable=True))
        batch.create_index("ix_session_dial_in", ["dial_in"], unique=True)
    op.create_table(
        "call_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("caller", sa.String(length=200), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("site_id", sa.String(length=100), nullable=True),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("answered_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("end_reason", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_record_session", "call_record", ["session_id"])
    op.create_index("ix_call_record_call_id", "call_record", ["call_id"])


def downgrade() -> None:
    op.drop_table("call_record")
    with op.batch_alter_table("session") as batch:
        batch.drop_index("ix_session_dial_in")
        batch.drop_column("dial_in")
