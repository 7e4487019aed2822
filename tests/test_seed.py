"""pgfeed seed: a deterministic, plausible, consistent synthetic world (small scale here;
the timings of the large ones are in the reference docs)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from pgfeed.seed import SeedError, seed_steps, seed_world

from .helpers import fingerprint
from .test_rebuild import DERIVED, derived

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SMALL = dict(users=200, posts=1000, interactions=5000, days=20)

# every table the seed writes, with the columns that depend on the wall clock
# (trending at now(), job times) left out
WORLD = {
    "posts": "post_id, author_id, created_at, category, post_type, collective_id, visibility, is_deleted,"
             " media_ready, duration_ms, embedding::text, like_count, comment_count, share_count, view_count,"
             " gift_amount, tip_amount, praise_count, trophy_count, save_count, report_count, watch_count,"
             " watch_ratio_sum",
    "follows": "*", "collective_members": "*", "blocks": "*", "user_preferences": "*", "interactions": "*",
    "impressions": "*", "seen_posts": "*", "hidden_posts": "*", "user_author_affinity": "*",
    "user_post_type_affinity": "*", "user_category_affinity": "*", "user_signals": "*",
    "user_taste": "user_id, taste::text, strength, updated_at",
    "creator_quality": "author_id, watch_ratio, like_rate, report_rate, quality, posts, views",
}


def world_print(db) -> dict:
    return {table: db.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                              f" FROM (SELECT {columns} FROM feed.{table}) t").fetchone()
            for table, columns in WORLD.items()}


def indexes(db) -> list[tuple]:
    return db.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'feed' ORDER BY 1").fetchall()


@pytest.fixture
def seeded(db, db_dsn):
    steps = []
    result = seed_world(db_dsn, seed=1, now=NOW, progress=lambda *a: steps.append(a), **SMALL)
    return result, steps


def test_counts_are_as_asked(db, seeded):
    result, _ = seeded
    counts = {t: db.execute(f"SELECT count(*) FROM feed.{t}").fetchone()[0]
              for t in ("posts", "interactions", "impressions")}
    assert counts == {"posts": 1000, "interactions": 5000, "impressions": 2500}
    assert {k: result[k] for k in counts} == counts
    users = db.execute("SELECT min(u), max(u) FROM (SELECT user_id FROM feed.interactions UNION ALL"
                       " SELECT author_id FROM feed.posts UNION ALL SELECT follower_id FROM feed.follows UNION ALL"
                       " SELECT followee_id FROM feed.follows UNION ALL SELECT user_id FROM feed.impressions) x(u)"
                       ).fetchone()
    assert users[0] >= 1 and users[1] <= 200
    assert result["follows"] > 200 and result["collective_members"] > 0 and result["blocks"] > 0
    assert result["user_preferences"] > 0 and result["embeddings"] is True


def test_progress_is_reported_per_step(seeded):
    result, steps = seeded
    names = [s[0] for s in steps]
    assert names == list(result["timings"])
    assert [s[1] for s in steps] == list(range(1, len(steps) + 1))
    assert {s[2] for s in steps} == {len(steps)}
    assert {"posts", "interactions", "impressions", "rebuild", "heartbeat", "indexes"} <= set(names)
    assert [name for name, _ in seed_steps()] == [n for n in names if n not in ("prepare", "vacuum", "indexes")]


def test_same_seed_same_world_other_seed_other_world(db, db_dsn, seeded):
    first = world_print(db)
    seed_world(db_dsn, seed=1, now=NOW, replace=True, **SMALL)
    assert world_print(db) == first
    seed_world(db_dsn, seed=2, now=NOW, replace=True, **SMALL)
    other = world_print(db)
    assert other["posts"][0] == first["posts"][0]
    for table in ("posts", "follows", "interactions", "impressions", "user_signals"):
        assert other[table][1] != first[table][1], table


def test_invariants(db, seeded):
    q = lambda sql: db.execute(sql).fetchone()  # noqa: E731
    assert q("SELECT count(*) FROM feed.follows WHERE follower_id = followee_id") == (0,)
    assert q("SELECT count(*) FROM feed.blocks WHERE user_id = blocked_user_id") == (0,)
    # amounts: positive for gifts and tips, zero otherwise; both are rare
    assert q("SELECT count(*) FROM feed.interactions WHERE (action IN ('gift', 'tip')) <> (value_amount > 0)") == (0,)
    gifts, tips, total = q("SELECT count(*) FILTER (WHERE action = 'gift'), count(*) FILTER (WHERE action = 'tip'),"
                           " count(*) FROM feed.interactions")
    assert 0 < gifts < total * 0.02 and 0 < tips < total * 0.02
    # mostly views and likes; every action appears
    mix = dict(db.execute("SELECT action, count(*) FROM feed.interactions GROUP BY 1").fetchall())
    assert mix["view"] + mix["like"] > 0.7 * total and mix["view"] > mix["like"] > mix["comment"]
    assert set(mix) == {"view", "like", "unlike", "comment", "share", "gift", "tip", "praise", "trophy", "save",
                        "not_interested", "report", "dislike"}
    # times: after the post, not after the world's now, spread over the days
    assert db.execute("SELECT count(*) FROM feed.interactions i JOIN feed.posts p USING (post_id)"
                      " WHERE i.created_at < p.created_at OR i.created_at > %s", [NOW]).fetchone() == (0,)
    first, last, recent = db.execute(
        "SELECT min(created_at), max(created_at), count(*) FILTER (WHERE created_at > %s - interval '1 hour')"
        " FROM feed.posts", [NOW]).fetchone()
    assert last <= NOW and first >= NOW - timedelta(days=20) and first < NOW - timedelta(days=15) and recent > 0
    assert db.execute("SELECT count(*) FROM feed.impressions i JOIN feed.posts p USING (post_id)"
                      " WHERE i.seen_at < p.created_at OR i.seen_at > %s", [NOW]).fetchone() == (0,)
    # ids follow time in the log
    assert q("SELECT bool_and(ordered) FROM (SELECT created_at >= lag(created_at) OVER (ORDER BY interaction_id)"
             " AS ordered FROM feed.interactions) x") == (True,)
    # watch ratios: views of videos only
    assert q("SELECT count(*) FROM feed.interactions i JOIN feed.posts p USING (post_id)"
             " WHERE i.watch_ratio IS NOT NULL AND (i.action <> 'view' OR p.post_type <> 'video')") == (0,)
    assert q("SELECT count(*) FROM feed.interactions WHERE watch_ratio IS NOT NULL")[0] > 0
    # categories and types; videos have a duration, a few over the cap; a few unservable posts
    categories, types = q("SELECT count(DISTINCT category), count(DISTINCT post_type) FROM feed.posts")
    assert categories == 12 and types >= 5
    assert q("SELECT count(*) FROM feed.posts WHERE post_type = 'video' AND duration_ms IS NULL") == (0,)
    assert q("SELECT count(*) FROM feed.posts WHERE duration_ms > 180000")[0] > 0
    flags = q("SELECT count(*) FILTER (WHERE visibility = 'shadow_ban'),"
              " count(*) FILTER (WHERE visibility = 'removed'), count(*) FILTER (WHERE is_deleted),"
              " count(*) FILTER (WHERE NOT media_ready) FROM feed.posts")
    assert all(0 < n < 50 for n in flags), flags
    # collectives: a post's collective has its author as a member
    assert q("SELECT count(*) FROM feed.posts p WHERE p.collective_id IS NOT NULL AND NOT EXISTS ("
             " SELECT 1 FROM feed.collective_members m WHERE m.collective_id = p.collective_id"
             " AND m.user_id = p.author_id)") == (0,)
    assert q("SELECT count(*) FROM feed.posts WHERE collective_id IS NOT NULL")[0] > 0


def test_the_world_is_skewed_like_a_real_one(db, seeded):
    q = lambda sql: db.execute(sql).fetchone()  # noqa: E731
    # power-law follower counts: the top 5% of followed users hold a large share of all follows
    top = q("SELECT sum(c) FILTER (WHERE r <= greatest(1, n * 0.05)) / sum(c) FROM (SELECT count(*) c,"
            " row_number() OVER (ORDER BY count(*) DESC) r, count(*) OVER () n"
            " FROM feed.follows GROUP BY followee_id) x")
    assert top[0] > 0.3
    # Zipf-like post popularity: the top 1% of posts get far more than 1% of interactions
    share = q("SELECT sum(c) FILTER (WHERE r <= 10)::float / sum(c) FROM (SELECT count(*) c,"
              " row_number() OVER (ORDER BY count(*) DESC) r FROM feed.interactions GROUP BY post_id) x")
    assert share[0] > 0.08
    # viewers engage more with authors they follow and with their favourite categories
    followed, other = q(
        "SELECT avg((i.action = 'like')::int) FILTER (WHERE f.follower_id IS NOT NULL),"
        " avg((i.action = 'like')::int) FILTER (WHERE f.follower_id IS NULL)"
        " FROM feed.interactions i JOIN feed.posts p USING (post_id)"
        " LEFT JOIN feed.follows f ON f.follower_id = i.user_id AND f.followee_id = p.author_id")
    assert followed > other
    # embeddings cluster by category
    same, cross = q(
        "SELECT avg(1 - (a.embedding <=> b.embedding)) FILTER (WHERE a.category = b.category),"
        " avg(1 - (a.embedding <=> b.embedding)) FILTER (WHERE a.category <> b.category)"
        " FROM feed.posts a JOIN feed.posts b ON b.post_id BETWEEN a.post_id + 1 AND a.post_id + 20")
    assert same > cross + 0.3


def test_derived_state_is_consistent_and_indexes_are_back(db, db_dsn, seeded):
    assert db.execute("SELECT count(*) FROM feed.job_runs WHERE job IN ('rebuild', 'heartbeat')").fetchone() == (2,)
    with db.transaction(force_rollback=True):
        before = derived(db)
        db.execute("SELECT feed._rebuild_derived_state()")
        after = derived(db)
    for table in DERIVED:
        if table == "posts":
            assert [r[:-1] for r in after[table]] == [r[:-1] for r in before[table]]
        else:
            assert after[table] == before[table], table
    # the seed dropped secondary indexes for the load and rebuilt each one as it was
    seed_world(db_dsn, seed=3, now=NOW, replace=True, **SMALL)
    fresh = psycopg.connect(db_dsn)
    with fresh:
        defs = dict(indexes(fresh))
    assert "hnsw" in defs["post_embeddings_hnsw_idx"] and "interactions_user_recent_idx" in defs


def test_indexes_equal_those_of_a_fresh_install(db, db_dsn):
    expected = indexes(db)
    seed_world(db_dsn, seed=5, now=NOW, **SMALL)
    assert indexes(db) == expected


def test_refuses_a_database_with_posts_unless_replace(db, db_dsn):
    db.execute("INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, 1, 'art')")
    db.execute("SELECT feed.record_interaction(2, 1, 'like')")
    before = fingerprint(db)
    with pytest.raises(SeedError, match="already holds 1 posts"):
        seed_world(db_dsn, seed=1, now=NOW, **SMALL)
    assert fingerprint(db) == before
    db.execute("UPDATE feed.settings SET value = '0.3' WHERE name = 'ema_alpha'")
    result = seed_world(db_dsn, seed=1, now=NOW, replace=True, users=50, posts=100, interactions=300, days=5)
    assert result["posts"] == 100 and result["interactions"] == 300
    assert db.execute("SELECT min(interaction_id) FROM feed.interactions").fetchone() == (1,)
    assert db.execute("SELECT value FROM feed.settings WHERE name = 'ema_alpha'").fetchone() == ("0.3",)


def test_without_embeddings_and_without_interactions(db, db_dsn):
    result = seed_world(db_dsn, seed=9, now=NOW, users=20, posts=30, interactions=0, days=1, embeddings=False)
    assert result["embeddings"] is False and result["interactions"] == 0 and result["impressions"] == 0
    assert db.execute("SELECT count(*) FROM feed.posts WHERE embedding IS NOT NULL").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM feed.posts").fetchone() == (30,)


@pytest.mark.parametrize("kwargs,message", [
    (dict(users=1), "users must be between 2"),
    (dict(posts=0), "posts must be between 1"),
    (dict(interactions=-1), "interactions must be between 0"),
    (dict(days=0), "days must be between"),
    (dict(seed=-4), "seed must be between 0"),
    (dict(impressions=2.5), "impressions must be an integer"),
])
def test_bad_arguments(db, db_dsn, kwargs, message):
    args = dict(SMALL, seed=1) | kwargs
    before = fingerprint(db)
    with pytest.raises(SeedError, match=message):
        seed_world(db_dsn, **args)
    assert fingerprint(db) == before


def test_needs_a_migrated_database(empty_database):
    _, dsn = empty_database
    with pytest.raises(SeedError, match="pgfeed migrate"):
        seed_world(dsn, seed=1, **SMALL)
