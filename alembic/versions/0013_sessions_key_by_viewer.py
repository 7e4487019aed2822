"""Sessions and their pages are keyed by (viewer_key, session_id), so they can
be distributed by viewer on a Citus cluster (docs/distributed.md); the
engaged-rows ledger no longer references the served rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from pathlib import Path

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_session_fkey;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_post_once;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_pkey;
ALTER TABLE feed.feed_sessions DROP CONSTRAINT feed_sessions_pkey;
ALTER TABLE feed.feed_sessions ADD CONSTRAINT feed_sessions_pkey PRIMARY KEY (session_id);
ALTER TABLE feed.feed_session_items ADD CONSTRAINT feed_session_items_pkey PRIMARY KEY (session_id, page_no, rank);
ALTER TABLE feed.feed_session_items ADD CONSTRAINT feed_session_items_post_once UNIQUE (session_id, post_id);
ALTER TABLE feed.feed_session_items ADD CONSTRAINT feed_session_items_session_id_fkey FOREIGN KEY (session_id)
    REFERENCES feed.feed_sessions (session_id) ON DELETE CASCADE;
DELETE FROM feed.analytics_engaged_rows e
WHERE NOT EXISTS (SELECT 1 FROM feed.feed_session_items i WHERE i.session_id = e.session_id AND i.post_id = e.post_id);
ALTER TABLE feed.analytics_engaged_rows ADD CONSTRAINT analytics_engaged_rows_session_id_post_id_fkey
    FOREIGN KEY (session_id, post_id) REFERENCES feed.feed_session_items (session_id, post_id) ON DELETE CASCADE;
ALTER TABLE feed.feed_session_items DROP COLUMN viewer_key;
ALTER TABLE feed.feed_sessions DROP COLUMN viewer_key;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
