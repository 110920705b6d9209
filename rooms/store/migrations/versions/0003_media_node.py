"""media_node: registered media node processes

Revision ID: 0003_media_node
Revises: 0002_app_secret
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_media_node"
down_revision = "0002_app_secret"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_node",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=300), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("media_node")
