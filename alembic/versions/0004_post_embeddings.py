"""The HNSW index moves to feed.post_embeddings, so counter updates on feed.posts stay cheap.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE_SQL = Path(__file__).with_suffix(".sql")

DOWNGRADE_SQL = """
DROP TABLE feed.post_embeddings CASCADE;
ALTER TABLE feed.posts RESET (toast_tuple_target);
ALTER TABLE feed.posts ALTER COLUMN embedding SET STORAGE EXTENDED;
CREATE INDEX posts_embedding_hnsw_idx ON feed.posts USING hnsw (embedding vector_cosine_ops);
"""


def upgrade() -> None:
    op.execute(UPGRADE_SQL.read_text())


def downgrade() -> None:
    op.execute(DOWNGRADE_SQL)
