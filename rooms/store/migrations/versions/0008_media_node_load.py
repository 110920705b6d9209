"""media_node.load_json: the load a node process reports with each heartbeat

Revision ID: 0008_node_load
Revises: 0007_nonce_use
"""
from alembic import op
import sqlalchemy as sa

revision = "0008_node_load"
down_revision = "0007_nonce_use"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media_node") as batch:
        batch.add_column(sa.Column("load_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_node") as batch:
        batch.drop_column("load_json")
