"""Analytics read from totals: feed.analytics_daily_sources and
feed.analytics_experiment_variants, filled from the rollups already kept;
sessions rolled up soon after they expire, their later engagement counted once
(feed.analytics_engaged_rows, analytics_rollup_state.engaged_through).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30

feed._rollup_analytics (sql/functions/70_experiments.sql) keeps them current;
feed.feed_metrics and feed.experiment_results read them plus the sessions not
yet rolled up.
"""

from pathlib import Path

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.analytics_engaged_rows;
ALTER TABLE feed.analytics_rollup_state DROP COLUMN engaged_through;
DROP TABLE feed.analytics_experiment_variants;
DROP INDEX feed.analytics_daily_posts_author_idx;
DROP TABLE feed.analytics_daily_sources;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
