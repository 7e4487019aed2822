"""Typed, range-checked settings; per-user engagement states; the call time of each interaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

After upgrading a database that already holds interactions, run
`pgfeed rebuild-counters` (feed.rebuild_counters()) once: likes, praise,
trophies and saves become per-user states (contract §3.2 v2), so the post
counters and affinities derived under the old rules are recomputed from the log.
"""

from pathlib import Path

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.user_post_state;
ALTER TABLE feed.interactions DROP COLUMN called_at;
ALTER TABLE feed.settings DROP COLUMN min_value, DROP COLUMN max_value;
DELETE FROM feed.settings WHERE kind = 'boolean';
ALTER TABLE feed.settings DROP CONSTRAINT settings_kind_known,
    ADD CONSTRAINT settings_kind_known CHECK (kind IN ('integer', 'number', 'interval', 'text'));
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
