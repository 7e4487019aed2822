"""Experiments, feature flags and feed analytics (contract §8).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

The functions (assignment, validation, attribution, rollup) live in
sql/functions/70_experiments.sql, re-applied by every migrate; the grants in
sql/functions/90_security.sql.
"""

from pathlib import Path

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.analytics_experiment_viewers;
DROP TABLE feed.analytics_daily_pages;
DROP TABLE feed.analytics_daily_posts;
DROP TABLE feed.analytics_rollup_state;
ALTER TABLE feed.feed_session_items DROP COLUMN served_at;
ALTER TABLE feed.feed_sessions DROP COLUMN experiments;
DROP TABLE feed.experiments;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
