"""The interaction log's primary key becomes (user_id, interaction_id), so the
log can be distributed by viewer on a Citus cluster (docs/distributed.md).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from pathlib import Path

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
ALTER TABLE feed.interactions DROP CONSTRAINT interactions_pkey;
ALTER TABLE feed.interactions ADD CONSTRAINT interactions_pkey PRIMARY KEY (interaction_id);
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
