"""Operators' records: call records for every leg, alarms, per-minute quality, browser sign-in

Revision ID: 0010_operations
Revises: 0009_override
"""
from alembic import op
import sqlalchemy as sa

revision = "0010_operations"
down_revision = "0009_override"
branch_labels = None
depends_on = None

QUALITY = ("avg_mos", "worst_mos", "avg_loss_pct", "worst_loss_pct", "avg_video", "worst_video", "avg_kbps_in",
           "avg_kbps_out")


def upgrade() -> None:
    with op.batch_alter_table("call_record") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="sip"))
        batch.add_column(sa.Column("node", sa.String(100), nullable=True))
        batch.add_column(sa.Column("leg_id", sa.String(40), nullable=True))
        batch.add_column(sa.Column("user_id", sa.String(40), nullable=True))
        for name in QUALITY:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch.create_index("ix_call_record_leg_id", ["leg_id"], unique=True)
        batch.create_index("ix_call_record_started_at", ["started_at"])
    op.create_table(
        "alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("session_id", sa.String(40), nullable=True),
        sa.Column("site_id", sa.String(100), nullable=True),
        sa.Column("link_id", sa.String(100), nullable=True),
        sa.Column("node_id", sa.String(100), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.BigInteger(), nullable=False),
        sa.Column("cleared_at", sa.BigInteger(), nullable=True),
        sa.Column("acked_by", sa.String(100), nullable=True),
        sa.Column("acked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alarm_raised_at", "alarm", ["raised_at"])
    op.create_table(
        "quality_minute",
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("node", sa.String(100), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("kbps_in", sa.Float(), nullable=False),
        sa.Column("kbps_out", sa.Float(), nullable=False),
        sa.Column("loss_avg", sa.Float(), nullable=True),
        sa.Column("loss_max", sa.Float(), nullable=True),
        sa.Column("jitter_avg", sa.Float(), nullable=True),
        sa.Column("jitter_max", sa.Float(), nullable=True),
        sa.Column("rtt_avg", sa.Float(), nullable=True),
        sa.Column("mos_avg", sa.Float(), nullable=True),
        sa.Column("mos_min", sa.Float(), nullable=True),
        sa.Column("video_avg", sa.Float(), nullable=True),
        sa.Column("video_min", sa.Float(), nullable=True),
        sa.Column("freezes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "node", "site", "minute"),
    )
    op.create_index("ix_quality_minute_minute", "quality_minute", ["minute"])
    op.create_table(
        "web_session",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_table(
        "feed_token",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("feed_token")
    op.drop_table("web_session")
    op.drop_table("quality_minute")
    op.drop_table("alarm")
    with op.batch_alter_table("call_record") as batch:
        batch.drop_index("ix_call_record_started_at")
        batch.drop_index("ix_call_record_leg_id")
        for name in ("kind", "node", "leg_id", "user_id", *QUALITY):
            batch.drop_column(name)
