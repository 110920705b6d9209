"""sip_account, sip_binding: SIP accounts bound to sites and their registered contacts

Revision ID: 0004_sip
Revises: 0003_media_node
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_sip"
down_revision = "0003_media_node"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sip_account",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=100), nullable=False),
        sa.Column("realm", sa.String(length=100), nullable=False),
        sa.Column("ha1_md5", sa.String(length=32), nullable=False),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "sip_binding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("contact", sa.String(length=500), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sip_binding_username", "sip_binding", ["username"])


def downgrade() -> None:
    op.drop_index("ix_sip_binding_username", "sip_binding")
    op.drop_table("sip_binding")
    op.drop_table("sip_account")
