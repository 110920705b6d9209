"""sip_nonce_use: each digest (nonce, nonce-count) accepted, so a replayed response is refused

Nonces stay stateless (signed timestamps); what is remembered is their use, by every
process that answers SIP, for as long as a nonce is valid.

Revision ID: 0007_nonce_use
Revises: 0006_occurrences
"""
from alembic import op
import sqlalchemy as sa

revision = "0007_nonce_use"
down_revision = "0006_occurrences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sip_nonce_use",
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("nc", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", "nc"),
    )
    op.create_index("ix_sip_nonce_use_expires_at", "sip_nonce_use", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sip_nonce_use_expires_at", "sip_nonce_use")
    op.drop_table("sip_nonce_use")
