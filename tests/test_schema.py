"""The core schema: everything the contract names exists, and bad rows are refused."""

from __future__ import annotations

import psycopg
import pytest

CONTRACT_COLUMNS = {
    "posts": {
        "post_id", "author_id", "created_at", "category", "post_type", "collective_id", "visibility",
        "is_deleted", "media_ready", "duration_ms", "embedding", "like_count", "comment_count",
        "share_count", "view_count", "gift_amount", "tip_amount", "trending_score",
    },
    "follows": {"follower_id", "followee_id", "created_at"},
    "collective_members": {"collective_id", "user_id", "joined_at"},
    "blocks": {"user_id", "blocked_user_id", "created_at"},
    "user_preferences": {"user_id", "preferred_post_types", "muted_authors", "muted_collectives", "muted_categories"},
    "interactions": {"interaction_id", "user_id", "post_id", "action", "value_amount", "time_spent_seconds",
                     "created_at"},
    "impressions": {"user_id", "post_id", "seen_at", "source", "score", "session_id"},
}

CONTRACT_SETTINGS = {
    "cooldown": "30 days", "max_repeats_per_page": "2", "protected_top_ranks": "6",
    "inventory_waterline": "24", "max_duration_ms": "180000", "epsilon": "0.10",
    "max_posts_per_author": "2", "session_lifetime": "30 minutes", "trending_weight_likes": "1",
    "trending_weight_comments": "3", "trending_weight_shares": "5", "trending_weight_gifts": "50",
    "trending_weight_tips": "50", "gravity": "1.8", "trending_window": "7 days", "ema_alpha": "0.2",
}


def columns(db, table):
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'feed' AND table_name = %s",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("table", sorted(CONTRACT_COLUMNS))
def test_contract_tables_have_their_columns(db, table):
    assert CONTRACT_COLUMNS[table] <= columns(db, table)


def test_contract_primary_keys(db):
    def pk(table):
        return db.execute(
            "SELECT array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))"
            " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary",
            [f"feed.{table}"],
        ).fetchone()[0]

    assert pk("posts") == ["post_id"]
    assert pk("follows") == ["follower_id", "followee_id"]
    assert pk("user_preferences") == ["user_id"]


def test_settings_hold_the_contract_defaults(db):
    rows = dict(db.execute("SELECT name, value FROM feed.settings").fetchall())
    for name, value in CONTRACT_SETTINGS.items():
        assert name in rows, name
        kind = db.execute("SELECT kind FROM feed.settings WHERE name = %s", [name]).fetchone()[0]
        if kind == "interval":
            assert db.execute("SELECT %s::interval = %s::interval", [rows[name], value]).fetchone()[0], name
        else:
            assert float(rows[name]) == float(value), name


def test_posts_defaults(db):
    db.execute("INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, 10, 'art')")
    row = db.execute(
        "SELECT post_type, visibility, is_deleted, media_ready, like_count, gift_amount, trending_score"
        " FROM feed.posts WHERE post_id = 1"
    ).fetchone()
    assert row[:4] == ("post", "public", False, True)
    assert row[4] == 0 and row[5] == 0


def test_embedding_column_is_a_384_dimension_vector_with_an_hnsw_index(db):
    assert db.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'feed.posts'::regclass AND attname = 'embedding'"
    ).fetchone()[0] == "vector(384)"
    indexdef = db.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'feed' AND indexname = 'post_embeddings_hnsw_idx'"
    ).fetchone()[0]
    assert "hnsw" in indexdef and "vector_cosine_ops" in indexdef and "post_embeddings" in indexdef


def test_embeddings_are_copied_to_the_indexed_table(db):
    vec = lambda x: "[" + ",".join([str(x)] * 384) + "]"  # noqa: E731
    db.execute("INSERT INTO feed.posts (post_id, author_id, category, embedding) VALUES"
               " (1, 1, 'a', %s::vector), (2, 1, 'a', NULL)", [vec(0.5)])
    assert db.execute("SELECT post_id FROM feed.post_embeddings").fetchall() == [(1,)]
    db.execute("UPDATE feed.posts SET embedding = %s::vector WHERE post_id = 2", [vec(0.25)])
    db.execute("UPDATE feed.posts SET embedding = NULL WHERE post_id = 1")
    db.execute("UPDATE feed.posts SET like_count = like_count + 1")
    rows = db.execute("SELECT post_id, embedding = %s::vector FROM feed.post_embeddings", [vec(0.25)]).fetchall()
    assert rows == [(2, True)]
    db.execute("DELETE FROM feed.posts WHERE post_id = 2")
    assert db.execute("SELECT count(*) FROM feed.post_embeddings").fetchone()[0] == 0


def test_truncating_posts_empties_the_embedding_copies(db):
    db.execute("INSERT INTO feed.posts (post_id, author_id, category, embedding) VALUES"
               " (1, 1, 'a', %s::vector)", ["[" + ",".join(["0.5"] * 384) + "]"])
    db.execute("TRUNCATE feed.posts CASCADE")
    assert db.execute("SELECT count(*) FROM feed.post_embeddings").fetchone()[0] == 0


def test_every_table_has_one_place_on_a_cluster(db):
    """The cluster plan (pgfeed.distribution) places each table of the schema exactly once."""
    from pgfeed import distribution

    planned = [*distribution.DISTRIBUTED_BY_VIEWER, *distribution.REFERENCE, *distribution.COORDINATOR_ONLY]
    assert len(planned) == len(set(planned))
    tables = {r[0] for r in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'feed'::regnamespace AND relkind IN ('r', 'p')")}
    assert set(planned) == tables
    nullable = dict(db.execute(
        "SELECT table_name || '.' || column_name, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_schema = 'feed'").fetchall())
    for table, column in distribution.DISTRIBUTED_BY_VIEWER.items():
        # a distribution value may not be NULL
        assert nullable.get(f"{table}.{column}") is False, (table, column)


def test_counter_updates_are_cheap_row_copies(db):
    """The embedding lives out of line, and no HNSW index sits on feed.posts."""
    assert db.execute("SELECT reloptions FROM pg_class WHERE oid = 'feed.posts'::regclass").fetchone()[0] == [
        "toast_tuple_target=128"]
    assert db.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'feed' AND tablename = 'posts'"
                      " AND indexdef LIKE '%hnsw%'").fetchone()[0] == 0


BAD_ROWS = [
    ("empty category", "INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, 1, '')", "23514"),
    ("blank category", "INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, 1, '   ')", "23514"),
    ("null category", "INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, 1, NULL)", "23502"),
    ("unknown visibility",
     "INSERT INTO feed.posts (post_id, author_id, category, visibility) VALUES (1, 1, 'a', 'private')", "23514"),
    ("negative gift amount",
     "INSERT INTO feed.posts (post_id, author_id, category, gift_amount) VALUES (1, 1, 'a', -1)", "23514"),
    ("negative like count",
     "INSERT INTO feed.posts (post_id, author_id, category, like_count) VALUES (1, 1, 'a', -1)", "23514"),
    ("negative duration",
     "INSERT INTO feed.posts (post_id, author_id, category, duration_ms) VALUES (1, 1, 'a', -5)", "23514"),
    ("null author", "INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, NULL, 'a')", "23502"),
    ("self follow", "INSERT INTO feed.follows (follower_id, followee_id) VALUES (5, 5)", "23514"),
    ("self block", "INSERT INTO feed.blocks (user_id, blocked_user_id) VALUES (5, 5)", "23514"),
    ("unknown action", "INSERT INTO feed.interactions (user_id, post_id, action) VALUES (1, 1, 'poke')", "23514"),
    ("negative value amount",
     "INSERT INTO feed.interactions (user_id, post_id, action, value_amount) VALUES (1, 1, 'tip', -2)", "23514"),
    ("negative time spent",
     "INSERT INTO feed.interactions (user_id, post_id, action, time_spent_seconds) VALUES (1, 1, 'view', -1)",
     "23514"),
]


@pytest.mark.parametrize("label,statement,sqlstate", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_constraints_reject_bad_rows_and_write_nothing(db, label, statement, sqlstate):
    table = statement.split()[2]
    before = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute(statement)
    assert excinfo.value.sqlstate == sqlstate
    assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == before


def test_duplicate_impression_in_one_session_is_refused_by_the_key(db):
    db.execute("INSERT INTO feed.impressions (user_id, post_id, session_id) VALUES (1, 2, 's1')")
    db.execute("INSERT INTO feed.impressions (user_id, post_id, session_id) VALUES (1, 2, 's2')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO feed.impressions (user_id, post_id, session_id) VALUES (1, 2, 's1')")
    db.execute("INSERT INTO feed.impressions (user_id, post_id, session_id) VALUES (1, 2, NULL)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO feed.impressions (user_id, post_id, session_id) VALUES (1, 2, NULL)")


@pytest.mark.parametrize("name,value", [("cooldown", "soon"), ("epsilon", "-0.1"), ("max_repeats_per_page", "1.5"),
                                        ("gravity", "NaN"), ("session_lifetime", "-5 minutes")])
def test_settings_refuse_bad_values(db, name, value):
    before = db.execute("SELECT value FROM feed.settings WHERE name = %s", [name]).fetchone()[0]
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
    assert excinfo.value.sqlstate == "22023"
    assert name in excinfo.value.diag.message_primary
    assert db.execute("SELECT value FROM feed.settings WHERE name = %s", [name]).fetchone()[0] == before


def test_settings_accessors(db):
    assert db.execute("SELECT feed._setting_interval('cooldown')").fetchone()[0].days == 30
    assert db.execute("SELECT feed._setting_integer('max_repeats_per_page')").fetchone()[0] == 2
    assert db.execute("SELECT feed._setting_number('gravity')").fetchone()[0] == pytest.approx(1.8)
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute("SELECT feed._setting('no_such_setting')")
    assert excinfo.value.sqlstate == "22023"
