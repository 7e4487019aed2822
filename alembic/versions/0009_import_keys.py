"""A ledger of imported interaction rows without created_at (idempotent re-import).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

pgfeed import (tools/pgfeed/importer.py, sql/functions/60_bulk.sql) records there
the running hash of each interaction row it imported without a created_at, and
skips a row whose hash is already there.
"""

from pathlib import Path

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.import_keys;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
