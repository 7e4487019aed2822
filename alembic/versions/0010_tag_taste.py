"""Tag taste: optional post tags and per-viewer tag affinity.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

The tag check (trigger on feed.posts) lives in sql/functions/15_posts.sql, the
affinity writes in sql/functions/20_writes.sql and the tag_affinity component
in sql/functions/50_feed.sql, re-applied by every migrate.
"""

from pathlib import Path

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.user_tag_affinity;
DROP TRIGGER IF EXISTS posts_tags_check ON feed.posts;
ALTER TABLE feed.posts DROP COLUMN tags;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
