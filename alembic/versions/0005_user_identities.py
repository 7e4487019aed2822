"""Identities of end users (JWT subjects mapped to user ids) for feed.current_viewer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Roles, grants and row-level security are not here: they live in
sql/functions/90_security.sql, re-applied by every migrate, so that a new
function or table can never be left with the default privileges.
"""

from pathlib import Path

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.user_identities;
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
