"""Feed sessions (served pages, cursor secret) and vector / collaborative-filtering state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from pathlib import Path

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.recommendations, feed.item_neighbors, feed.user_taste,
    feed.feed_session_items, feed.feed_sessions CASCADE;
DELETE FROM feed.install_state WHERE key = 'cursor_secret';
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
