"""call_record.leg_id: 120 characters (a trunk's id, trunk:SESSION:CHILD->PARENT:EPOCH, runs to about 54;
PostgreSQL refused it at 40, SQLite never checked)

Revision ID: 0016_call_record_leg_id
Revises: 0015_node_liveness
"""
from alembic import op
import sqlalchemy as sa

revision = "0016_call_record_leg_id"
down_revision = "0015_node_liveness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_record") as batch:
        batch.alter_column("leg_id", existing_type=sa.String(40), type_=sa.String(120), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("call_record") as batch:
        batch.alter_column("leg_id", existing_type=sa.String(120), type_=sa.String(40), existing_nullable=True)
