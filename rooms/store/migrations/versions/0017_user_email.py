"""user.email: where a person's invites are mailed (confctl serve --smtp); none until set

Revision ID: 0017_user_email
Revises: 0016_call_record_leg_id
"""
from alembic import op
import sqlalchemy as sa

revision = "0017_user_email"
down_revision = "0016_call_record_leg_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user") as batch:
        batch.drop_column("email")
