"""Engagement write path: engine counters, per-viewer signals, seen/hidden posts, job state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from pathlib import Path

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
UPDATE feed.settings SET description = 'Smoothing factor of the per-viewer and per-creator moving averages.'
WHERE name = 'ema_alpha';
DELETE FROM feed.settings WHERE name IN ('category_affinity_half_life', 'author_recency_window',
    'creator_quality_window', 'heartbeat_batch_size', 'maintenance_batch_size');
DROP TABLE feed.job_runs, feed.creator_quality, feed.user_signals, feed.user_category_affinity,
    feed.user_post_type_affinity, feed.user_author_affinity, feed.hidden_posts, feed.seen_posts CASCADE;
ALTER TABLE feed.interactions DROP CONSTRAINT interactions_watch_ratio_range, DROP COLUMN watch_ratio;
ALTER TABLE feed.posts DROP CONSTRAINT posts_engine_counters_not_negative,
    DROP COLUMN praise_count, DROP COLUMN trophy_count, DROP COLUMN save_count, DROP COLUMN report_count,
    DROP COLUMN watch_count, DROP COLUMN watch_ratio_sum;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
