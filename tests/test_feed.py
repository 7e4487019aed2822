"""get_personalized_feed and explain_score: errors, sessions, determinism, modes, profiles."""

from __future__ import annotations

import math

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .helpers import add_post, fingerprint, nested_plans


def page(db, user, size=12, cursor=None, context=None):
    return db.execute(
        "SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
        " FROM feed.get_personalized_feed(%s, %s, %s, %s)", [user, size, cursor, Jsonb(context or {})]).fetchall()


def world(db, n=40):
    for i in range(1, n + 1):
        add_post(db, i, author_id=100 + i % 9, category=["art", "music", "jazz"][i % 3],
                 post_type=["image", "video"][i % 2], age=f"{i * 3} hours", like_count=(i * 7) % 23)


# ---------------------------------------------------------------------------
# bad input

@pytest.mark.parametrize("size", [0, 101, -1, None])
def test_page_size_outside_1_to_100_is_22023(db, size):
    with pytest.raises(psycopg.Error) as excinfo:
        page(db, 1, size)
    assert excinfo.value.sqlstate == "22023" and "p_page_size" in excinfo.value.diag.message_primary


@pytest.mark.parametrize("context,argument", [
    ({"mode": "sideways"}, "p_context.mode"),
    ({"profile": "nope"}, "p_context.profile"),
    ({"mode": 3}, "p_context.mode"),
    ({"local_hour": 24}, "p_context.local_hour"),
    ({"local_hour": "noon"}, "p_context.local_hour"),
    ({"categories": "art"}, "p_context.categories"),
    ({"post_types": [1, 2]}, "p_context.post_types"),
    ({"include_own_posts": "yes"}, "p_context.include_own_posts"),
])
def test_bad_context_is_22023_naming_the_key(db, context, argument):
    world(db, 5)
    with pytest.raises(psycopg.Error) as excinfo:
        page(db, 1, 5, None, context)
    assert excinfo.value.sqlstate == "22023"
    assert excinfo.value.diag.message_primary.startswith(argument)


def test_context_must_be_an_object(db):
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute("SELECT * FROM feed.get_personalized_feed(1, 12, NULL, '[1]'::jsonb)")
    assert excinfo.value.sqlstate == "22023" and "p_context" in excinfo.value.diag.message_primary


def tamper(cursor: str) -> str:
    body = list(cursor)
    position = 10
    body[position] = "A" if body[position] != "A" else "B"
    return "".join(body)


@pytest.mark.parametrize("make_bad", [
    lambda c: tamper(c),
    lambda c: c[:-1],
    lambda c: c + "x",
    lambda c: "v1." + "A" * 48,
    lambda c: "garbage",
    lambda c: "",
    lambda c: c.replace("v1.", "v2."),
])
def test_tampered_or_malformed_cursor_is_22023_and_writes_nothing(db, make_bad):
    world(db, 30)
    first = page(db, 1, 5)
    before = fingerprint(db)
    with pytest.raises(psycopg.Error) as excinfo:
        page(db, 1, 5, make_bad(first[0][7]))
    assert excinfo.value.sqlstate == "22023" and "p_page_after" in excinfo.value.diag.message_primary
    assert fingerprint(db) == before


def test_a_foreign_cursor_is_refused(db):
    world(db, 30)
    mine = page(db, 1, 5)
    for other in (2, None):
        with pytest.raises(psycopg.Error) as excinfo:
            page(db, other, 5, mine[0][7])
        assert excinfo.value.sqlstate == "22023" and "another viewer" in excinfo.value.diag.message_primary


def test_an_expired_session_is_refused(db):
    world(db, 30)
    first = page(db, 1, 5)
    db.execute("UPDATE feed.feed_sessions SET expires_at = now() - interval '1 second'")
    with pytest.raises(psycopg.Error) as excinfo:
        page(db, 1, 5, first[0][7])
    assert excinfo.value.sqlstate == "22023" and "expired" in excinfo.value.diag.message_primary


def test_a_cursor_from_another_installation_is_refused(db):
    world(db, 30)
    first = page(db, 1, 5)
    db.execute("UPDATE feed.install_state SET value = md5('other') || md5('install') WHERE key = 'cursor_secret'")
    with pytest.raises(psycopg.Error) as excinfo:
        page(db, 1, 5, first[0][7])
    assert excinfo.value.sqlstate == "22023"


# ---------------------------------------------------------------------------
# sessions and determinism

def test_pages_continue_and_never_repeat_while_the_world_changes(db):
    world(db, 60)
    seen: set[int] = set()
    cursor = None
    for step in range(5):
        rows = page(db, 1, 8, cursor)
        ids = [r[1] for r in rows]
        assert len(rows) == 8 and not set(ids) & seen
        seen |= set(ids)
        cursor = rows[0][7]
        # likes, a new post and the heartbeat between pages
        db.execute("SELECT feed.record_interaction(7, %s, 'like')", [ids[0]])
        add_post(db, 1000 + step, author_id=500 + step, age="1 minute", like_count=100)
        db.execute("SELECT feed.refresh_trending_scores()")


def test_the_same_cursor_returns_the_same_page(db):
    world(db, 40)
    first = page(db, 1, 6)
    second = page(db, 1, 6, first[0][7])
    db.execute("SELECT feed.record_interaction(7, %s, 'share')", [second[-1][1]])
    add_post(db, 999, age="1 minute", like_count=1000)
    assert page(db, 1, 6, first[0][7]) == second


def test_recomputing_a_page_from_the_same_state_gives_the_same_result(db):
    """Determinism: every random choice is seeded by the session."""
    world(db, 40)
    first = page(db, 1, 6)
    db.execute("BEGIN")
    computed = page(db, 1, 6, first[0][7])
    db.execute("ROLLBACK")
    again = page(db, 1, 6, first[0][7])
    # the same posts, order, sources and cursor; scores differ only by the passing of time
    assert [r[:3] + r[4:6] + r[7:] for r in again] == [r[:3] + r[4:6] + r[7:] for r in computed]
    assert [r[3] for r in again] == pytest.approx([r[3] for r in computed], rel=1e-6)


def test_sessions_keep_their_first_context(db):
    world(db, 40)
    first = page(db, 1, 5, None, {"mode": "chronological"})
    later = page(db, 1, 5, first[0][7], {"mode": "trending"})
    assert {r[4] for r in later} == {"chronological"}


# ---------------------------------------------------------------------------
# modes

def test_trending_mode_is_the_trending_order(db):
    world(db, 30)
    rows = page(db, 1, 10, None, {"mode": "trending"})
    expected = [r[0] for r in db.execute(
        "SELECT post_id FROM feed.posts WHERE author_id <> 1 ORDER BY trending_score DESC, post_id LIMIT 10")]
    assert [r[1] for r in rows] == expected
    assert {r[4] for r in rows} == {"trending"}


def test_anonymous_viewers_get_a_chronological_feed(db):
    world(db, 30)
    rows = page(db, None, 10)
    expected = [r[0] for r in db.execute("SELECT post_id FROM feed.posts ORDER BY created_at DESC LIMIT 10")]
    assert [r[1] for r in rows] == expected and {r[4] for r in rows} == {"chronological"}


def test_random_mode_is_a_stable_shuffle(db):
    world(db, 40)
    first = page(db, 1, 10, None, {"mode": "random"})
    again = page(db, 1, 10, None, {"mode": "random"})
    assert {r[4] for r in first} == {"random"}
    assert [r[1] for r in first] != [r[1] for r in again], "another session, another shuffle"
    assert page(db, 1, 10, first[0][7]) == page(db, 1, 10, first[0][7])


def test_unknown_viewers_get_a_cold_start_feed(db):
    world(db, 40)
    rows = page(db, 123456, 12)
    assert len(rows) == 12
    assert {r[4] for r in rows} <= {"trending", "rising", "fresh", "explore"}


def test_context_filters_categories_and_post_types(db):
    world(db, 40)
    rows = page(db, 1, 12, None, {"categories": ["jazz"], "post_types": ["video"]})
    ids = [r[1] for r in rows]
    assert ids
    kinds = db.execute("SELECT DISTINCT category, post_type FROM feed.posts WHERE post_id = ANY(%s)", [ids]).fetchall()
    assert kinds == [("jazz", "video")]


def test_own_posts_only_on_request(db):
    world(db, 20)
    add_post(db, 500, author_id=1, age="1 minute", like_count=500)
    assert 500 not in [r[1] for r in page(db, 1, 20)]
    assert 500 in [r[1] for r in page(db, 1, 20, None, {"include_own_posts": True})]


# ---------------------------------------------------------------------------
# exploration

@pytest.mark.parametrize("epsilon,expected", [("0.10", 1), ("0.5", 5), ("0", 0)])
def test_exploration_takes_epsilon_of_the_slots(db, epsilon, expected):
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'epsilon'", [epsilon])
    world(db, 120)
    rows = page(db, 1, 10)
    assert sum(r[4] == "explore" for r in rows) == expected


# ---------------------------------------------------------------------------
# profiles reproduce their formulas

def components(row):
    return row[6]["components"]


def test_social_profile_formula(db):
    add_post(db, 1, author_id=50, post_type="image", age="6 hours", like_count=10, comment_count=20,
             praise_count=5, trophy_count=2, collective_id=7)
    add_post(db, 2, author_id=60, post_type="novel", age="30 hours", like_count=100)
    for post_id in range(3, 8):
        add_post(db, post_id, author_id=60, post_type="image", age="90 days")
    db.execute("INSERT INTO feed.follows VALUES (1, 50)")
    db.execute("INSERT INTO feed.collective_members VALUES (7, 1)")
    for post_id, action in [(3, "like"), (4, "like"), (5, "praise"), (6, "trophy"), (7, "like"), (3, "comment")]:
        db.execute("SELECT feed.record_interaction(1, %s, %s)", [post_id, action])
    with db.transaction():
        rows = {r[1]: r for r in page(db, 1, 2, None, {"profile": "social"})}
        now = db.execute("SELECT now()").fetchone()[0]
        created = dict(db.execute("SELECT post_id, created_at FROM feed.posts WHERE post_id IN (1, 2)").fetchall())
    hours1 = (now - created[1]).total_seconds() / 3600
    hours2 = (now - created[2]).total_seconds() / 3600
    # viewer's hearts+praise+trophies on images = 5 (top type), novels = 0; author 60 got 5 of them
    expected1 = (0.15 * 100 * math.exp(-hours1 / 24) + 0.25 * 50 + 0.20 * 0
                 + 0.15 * min(10 + 2 * 5 + 5 * 2 + 0.5 * 20, 50) + 0.15 * 30 + 0.10 * 10 * 5)
    expected2 = (0.15 * 100 * math.exp(-hours2 / 24) + 0 + 0.20 * min(5 * 5, 40)
                 + 0.15 * min(100, 50) + 0 + 0)
    assert rows[1][6]["base_score"] == pytest.approx(expected1, rel=1e-9)
    assert rows[2][6]["base_score"] == pytest.approx(expected2, rel=1e-9)
    assert rows[1][6]["profile"] == "social"


def test_blingram_profile_mixes_6_3_1(db):
    for i in range(1, 31):
        add_post(db, i, author_id=200 + i, age=f"{3 + i} hours", like_count=1000 - i)   # trending
    for i in range(31, 41):
        add_post(db, i, author_id=50 + i % 5, age="20 hours")                          # followed, old-ish
    for i in range(41, 46):
        add_post(db, i, author_id=300 + i, age="10 minutes")                           # rising
    db.execute("INSERT INTO feed.follows SELECT 1, a FROM generate_series(50, 54) a")
    rows = page(db, 1, 10, None, {"profile": "blingram"})
    sources = [r[4] for r in rows]
    assert sources.count("trending") == 6 and sources.count("following") == 3 and sources.count("rising") == 1
    with db.transaction():
        scores = dict(db.execute("SELECT post_id, trending_score FROM feed.posts").fetchall())
        assert all(r[6]["base_score"] == pytest.approx(scores[r[1]]) for r in rows)


def test_default_profile_weights(db):
    add_post(db, 1, author_id=50, age="12 hours", like_count=20, comment_count=4, duration_ms=30000)
    with db.transaction():
        row = page(db, 1, 1, None, {"local_hour": 23, "connection": "3g"})[0]
        hours = db.execute("SELECT extract(epoch FROM now() - created_at) / 3600 FROM feed.posts").fetchone()[0]
    c = components(row)
    assert c["recency"] == pytest.approx(math.exp(-float(hours) / 24), abs=1e-6)
    assert c["engagement"] == pytest.approx((20 + 0.5 * 4) / 50, abs=1e-6)
    # slow connection: 1 - 30s/60s; night: 1 - 30s/120s; the mean of the two
    assert c["context"] == pytest.approx(((1 - 0.5) + (1 - 0.25)) / 2, abs=1e-6)
    assert c["creator_quality"] == 0.5 and c["novelty"] == 1
    weights = db.execute("SELECT weights FROM feed.ranking_profiles WHERE name = 'default'").fetchone()[0]
    assert row[6]["base_score"] == pytest.approx(sum(weights[k] * v for k, v in c.items()), abs=1e-5)


def test_hybrid_profile_formula(db):
    db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'epsilon'")  # no seeded exploration slot
    vec = lambda *xs: "[" + ",".join(str(x) for x in xs + (0,) * (384 - len(xs))) + "]"  # noqa: E731
    add_post(db, 1, author_id=50, age="24 hours", like_count=10, embedding=vec(1, 0))
    add_post(db, 2, author_id=51, age="48 hours", like_count=60, embedding=vec(0.6, 0.8))
    db.execute("INSERT INTO feed.user_taste (user_id, taste, strength) VALUES (1, %s::vector, 1)", [vec(1, 0)])
    db.execute("INSERT INTO feed.recommendations (user_id, post_id, score, algorithm, expires_at)"
               " VALUES (1, 1, 0.5, 'itemknn', now() + interval '1 hour'), (1, 2, 1.0, 'itemknn', now() + interval '1 hour')")
    rows = {r[1]: r for r in page(db, 1, 2, None, {"profile": "hybrid"})}
    for post_id, collab, content, days, likes in [(1, 0.5, 1.0, 1, 10), (2, 1.0, 0.6, 2, 60)]:
        c = components(rows[post_id])
        assert c["collaborative"] == pytest.approx(collab) and c["taste_similarity"] == pytest.approx(content, abs=1e-6)
        assert c["recency"] == pytest.approx(math.exp(-days), abs=1e-3)
        assert c["engagement"] == pytest.approx(min(likes, 50) / 50)
        assert rows[post_id][6]["base_score"] == pytest.approx(
            0.4 * collab + 0.3 * content + 0.2 * c["recency"] + 0.1 * c["engagement"], abs=1e-5)
    assert rows[2][4] == "collaborative"


def test_expired_recommendations_are_ignored(db):
    add_post(db, 1, author_id=50)
    db.execute("INSERT INTO feed.recommendations (user_id, post_id, score, algorithm, expires_at)"
               " VALUES (1, 1, 1.0, 'itemknn', now() - interval '1 second')")
    row = page(db, 1, 1, None, {"profile": "hybrid"})[0]
    assert components(row)["collaborative"] == 0 and row[4] != "collaborative"


def test_profiles_change_with_an_update(db):
    world(db, 30)
    db.execute("""UPDATE feed.ranking_profiles SET weights = '{"trending": 1}' WHERE name = 'default'""")
    rows = page(db, 1, 5, None, {"profile": "default"})
    assert set(rows[0][6]["components"]) == {"trending"}


# ---------------------------------------------------------------------------
# explain_score

def test_explain_score_matches_the_feed_and_names_exclusions(db):
    world(db, 30)
    with db.transaction():  # one now(): freshness must not drift between the two statements
        rows = page(db, 1, 3)
        explained = db.execute("SELECT feed.explain_score(1, %s)", [rows[0][1]]).fetchone()[0]
    assert explained["eligible"] is True and explained["excluded_because"] == []
    assert explained["base_score"] == pytest.approx(rows[0][6]["base_score"], rel=1e-6)
    assert explained["components"] == pytest.approx(rows[0][6]["components"], abs=1e-5)

    db.execute("UPDATE feed.posts SET visibility = 'removed' WHERE post_id = 2")
    db.execute("INSERT INTO feed.blocks VALUES (%s, 1)", [db.execute("SELECT author_id FROM feed.posts WHERE post_id = 2").fetchone()[0]])
    db.execute("SELECT feed.record_interaction(1, 2, 'dislike')")
    explained = db.execute("SELECT feed.explain_score(1, 2, '{\"profile\": \"social\"}')").fetchone()[0]
    assert explained["eligible"] is False
    assert set(explained["excluded_because"]) == {"removed", "blocked", "hidden_by_dislike"}
    assert explained["in_cooldown"] is True and explained["profile"] == "social"


def test_explain_score_errors(db):
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute("SELECT feed.explain_score(1, 42)")
    assert excinfo.value.sqlstate == "23503"
    add_post(db, 42)
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute("""SELECT feed.explain_score(1, 42, '{"profile": "nope"}')""")
    assert excinfo.value.sqlstate == "22023"


def test_the_largest_page_widens_the_ladder_without_error(db):
    """A page of 100 for a viewer without precomputed recommendations widens
    the ladder to sources of 1600 candidates; the live collaborative and taste
    sources are capped at what they accept (found by the fuzz test)."""
    world(db, 40)
    db.execute("SELECT feed.record_interaction(1, 3, 'like')")
    rows = page(db, 1, 100)
    # every post once: the 39 unseen, then the liked one as a controlled repeat
    assert len(rows) == 40 and len({r[1] for r in rows}) == 40
    assert [r[1] for r in rows if r[5]] == [3]


# the planner's parallel costs at zero: any statement that may run under
# Gather would then be planned so
PARALLEL_EVERYWHERE = ("SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0",
                       "SET min_parallel_table_scan_size = 0", "SET min_parallel_index_scan_size = 0",
                       "SET max_parallel_workers_per_gather = 2")


@pytest.mark.parametrize("mode", ["personalized", "random", "trending", "chronological"])
def test_a_feed_call_never_plans_parallel_workers(db, mode):
    """A page reads a few hundred rows; starting workers costs more than that.
    Even where the session makes parallel plans free, no statement of a feed
    call is planned under Gather (the first page, a later page, the widest
    ladder and the repeats)."""
    world(db, 40)
    db.execute("SELECT feed.record_interaction(1, 3, 'like')")
    for statement in PARALLEL_EVERYWHERE:
        db.execute(statement)
    # the same statements outside a feed call do go parallel: the test can fail
    assert "Gather" in "\n".join(r[0] for r in db.execute(
        "EXPLAIN SELECT p.post_id FROM feed.posts p WHERE p.created_at > now() - interval '30 days'"
        " ORDER BY hashint8(p.post_id) LIMIT 5").fetchall())
    context = Jsonb({"mode": mode})
    plans = nested_plans(db, "SELECT * FROM feed.get_personalized_feed(1, 5, NULL, %s)", [context])
    cursor = page(db, 1, 5, None, {"mode": mode})[-1][7]
    plans += nested_plans(db, "SELECT * FROM feed.get_personalized_feed(1, 5, %s, %s)", [cursor, context])
    plans += nested_plans(db, "SELECT * FROM feed.get_personalized_feed(1, 100, NULL, %s)", [context])
    assert "Query Text" in plans and "Gather" not in plans
