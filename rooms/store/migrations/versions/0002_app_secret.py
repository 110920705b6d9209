"""app_secret: keys shared by every control-plane instance

Revision ID: 0002_app_secret
Revises: 9fe146f7087f
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_app_secret"
down_revision = "9fe146f7087f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_secret",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("app_secret")
