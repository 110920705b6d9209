"""session.codec: the session's video codec, vp8 or h264 (room systems send H.264; issue 26)

Revision ID: 0018_session_codec
Revises: 0017_user_email
"""
from alembic import op
import sqlalchemy as sa

revision = "0018_session_codec"
down_revision = "0017_user_email"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.add_column(sa.Column("codec", sa.String(8), nullable=False, server_default="vp8"))


def downgrade() -> None:
    with op.batch_alter_table("session") as batch:
        batch.drop_column("codec")
