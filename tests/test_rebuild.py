"""Rebuilding derived state from the logs: after any sequence of writes, wiping the
derived tables and calling feed._rebuild_derived_state() gives the same rows, bit for bit."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import add_post, fingerprint, trending

DERIVED = {
    "posts": "SELECT post_id, like_count, comment_count, share_count, view_count, gift_amount, tip_amount,"
             " praise_count, trophy_count, save_count, report_count, watch_count, watch_ratio_sum, trending_score"
             " FROM feed.posts ORDER BY post_id",
    "seen_posts": "SELECT * FROM feed.seen_posts ORDER BY user_id, post_id",
    "hidden_posts": "SELECT * FROM feed.hidden_posts ORDER BY user_id, post_id",
    "user_author_affinity": "SELECT * FROM feed.user_author_affinity ORDER BY user_id, author_id",
    "user_post_type_affinity": "SELECT * FROM feed.user_post_type_affinity ORDER BY user_id, post_type",
    "user_category_affinity": "SELECT * FROM feed.user_category_affinity ORDER BY user_id, category",
    "user_signals": "SELECT * FROM feed.user_signals ORDER BY user_id",
    "user_post_state": "SELECT * FROM feed.user_post_state ORDER BY user_id, post_id, state",
}
# taste vectors (40_vectors.sql) are rebuilt in closed form, equal within float tolerance
TASTE = "SELECT user_id, taste::text, strength, updated_at FROM feed.user_taste ORDER BY user_id"
VIEWER_TABLES = ["seen_posts", "hidden_posts", "user_author_affinity", "user_post_type_affinity",
                 "user_category_affinity", "user_signals", "user_taste", "user_post_state"]


def derived(db) -> dict[str, list[tuple]]:
    return {name: db.execute(query).fetchall() for name, query in DERIVED.items()}


def assert_same_taste(got, expected):
    assert [(r[0], r[3]) for r in got] == [(r[0], r[3]) for r in expected]
    for (_, taste, strength, _), (_, taste0, strength0, _) in zip(got, expected):
        assert strength == pytest.approx(strength0, rel=1e-4, abs=1e-6)
        values, values0 = (json.loads(t) for t in (taste, taste0))
        assert values == pytest.approx(values0, abs=1e-4)


def wipe_derived(db) -> None:
    """Forget every piece of derived state (the logs stay)."""
    db.execute("TRUNCATE " + ", ".join(f"feed.{t}" for t in VIEWER_TABLES))
    db.execute("UPDATE feed.posts SET like_count = 7, comment_count = 7, share_count = 7, view_count = 7,"
               " gift_amount = 7, tip_amount = 7, praise_count = 7, trophy_count = 7, save_count = 7,"
               " report_count = 7, watch_count = 7, watch_ratio_sum = 7")
    db.execute("UPDATE feed.posts SET trending_score = -1")


def assert_rebuild_reproduces(db) -> dict:
    """Inside one transaction (one now()): score every post as of now, take the
    derived state the write functions left, wipe it, rebuild, compare. Rolled back."""
    with db.transaction(force_rollback=True):
        db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'heartbeat_min_change'")  # exact scores
        db.execute("SELECT feed.refresh_trending_scores('100 years')")
        expected, expected_taste = derived(db), db.execute(TASTE).fetchall()
        wipe_derived(db)
        result = db.execute("SELECT feed._rebuild_derived_state()").fetchone()[0]
        got, got_taste = derived(db), db.execute(TASTE).fetchall()
    for table in DERIVED:
        assert got[table] == expected[table], table
    assert_same_taste(got_taste, expected_taste)
    return result


def interact(db, user, post, action, amount=0, seconds=0):
    return db.execute("SELECT feed.record_interaction(%s, %s, %s, %s, %s)",
                      [user, post, action, amount, seconds]).fetchone()[0]


def watch(db, user, post, play_ms, duration_ms=20000, liked=False, commented=False, shared=False):
    db.execute("SELECT feed.record_watch_progress(%s, %s, %s, %s, %s, %s, %s)",
               [user, post, play_ms, duration_ms, liked, commented, shared])


def world(db, posts=4):
    """Posts of two authors (one of whom is also a viewer), two types, two categories;
    all but the last with an embedding."""
    dim = db.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'feed.posts'::regclass"
                     " AND attname = 'embedding'").fetchone()[0]
    for post in range(1, posts + 1):
        embedding = None if post == posts else "[" + ",".join(str((post * 7 + d) % 5 - 2) for d in range(dim)) + "]"
        add_post(db, post, author_id=1 if post % 2 else 100, category="jazz" if post <= 2 else "chess",
                 post_type="video" if post % 2 else "image", age=f"{post} hours", duration_ms=20000,
                 embedding=embedding)


# ---------------------------------------------------------------------------
# hand examples

def test_like_unlike_unlike_like_gives_one_everywhere(db):
    world(db)
    for action in ["like", "unlike", "unlike", "like"]:
        interact(db, 7, 2, action)
    assert db.execute("SELECT like_count FROM feed.posts WHERE post_id = 2").fetchone() == (1,)
    result = assert_rebuild_reproduces(db)
    assert result["posts_updated"] == 4  # every post: wipe_derived changed them all
    with db.transaction(force_rollback=True):
        wipe_derived(db)
        db.execute("SELECT feed._rebuild_derived_state()")
        assert db.execute("SELECT like_count FROM feed.posts WHERE post_id = 2").fetchone() == (1,)
        assert db.execute("SELECT like_count FROM feed.user_author_affinity WHERE user_id = 7").fetchone() == (1,)
        assert db.execute("SELECT interaction_count FROM feed.user_post_type_affinity"
                          " WHERE user_id = 7").fetchone() == (1,)


def test_unlikes_before_any_like_and_by_other_viewers_floor_at_zero(db):
    world(db)
    for user, action in [(7, "unlike"), (8, "like"), (7, "unlike"), (9, "unlike"), (9, "unlike"), (8, "unlike"),
                         (7, "like"), (7, "praise"), (7, "unlike"), (7, "unlike"), (7, "trophy")]:
        interact(db, user, 1, action)
    assert_rebuild_reproduces(db)


def test_events_within_one_transaction_replay_in_log_order(db):
    world(db)
    with db.transaction():  # one now(): only interaction_id orders them
        for action in ["unlike", "like", "unlike", "unlike", "like", "like", "comment", "view", "report"]:
            interact(db, 7, 3, action)
        interact(db, 8, 3, "not_interested")
        interact(db, 8, 3, "dislike")
    assert_rebuild_reproduces(db)


def test_watch_progress_is_one_observation_with_its_flags(db):
    world(db)
    watch(db, 7, 1, 15000)
    watch(db, 7, 1, 45000, liked=True, shared=True)
    watch(db, 7, 3, 1000, commented=True)
    interact(db, 7, 1, "like")
    watch(db, 7, 1, 20000, liked=True, commented=True, shared=True)
    assert db.execute("SELECT observations, watches FROM feed.user_signals WHERE user_id = 7").fetchone() == (5, 4)
    assert_rebuild_reproduces(db)


def test_two_watches_and_more_in_one_transaction(db):
    world(db)
    with db.transaction():
        watch(db, 7, 1, 5000, liked=True)
        watch(db, 7, 1, 9000, commented=True, shared=True)
        interact(db, 7, 1, "view")
        interact(db, 7, 1, "share")
        watch(db, 7, 3, 500)
        interact(db, 7, 3, "view")
    assert db.execute("SELECT observations, watches FROM feed.user_signals WHERE user_id = 7").fetchone() == (6, 3)
    assert_rebuild_reproduces(db)


def test_impressions_count_as_sightings(db):
    world(db)
    db.execute("SELECT feed.record_impression(7, 1, 'trending', 0.5, 's1', now() - interval '3 days')")
    db.execute("SELECT feed.record_impression(7, 1, 'trending', 0.5, 's1')")  # a retry: not counted
    db.execute("SELECT feed.record_impression(7, 1, NULL, NULL, NULL, now() - interval '5 days')")
    db.execute("SELECT feed.record_impressions(7, ARRAY[1, 2, 3, 3], 's2')")
    interact(db, 7, 2, "like")
    db.execute("SELECT feed.record_impressions(8, ARRAY[4], NULL, now() + interval '1 hour')")
    assert db.execute("SELECT times_seen FROM feed.seen_posts WHERE user_id = 7 AND post_id = 1").fetchone() == (3,)
    assert_rebuild_reproduces(db)


def test_category_affinity_decays_and_clamps_like_the_write_path(db):
    db.execute("UPDATE feed.settings SET value = '20 milliseconds' WHERE name = 'category_affinity_half_life'")
    db.execute("UPDATE feed.settings SET value = '0.35' WHERE name = 'ema_alpha'")
    world(db)
    for i, action in enumerate(["trophy"] * 6 + ["view", "report", "report", "like", "gift", "dislike"] * 2):
        interact(db, 7, 1 + i % 4, action, Decimal("3.10") if action == "gift" else 0)
        time.sleep(0.004)
    assert_rebuild_reproduces(db)


def test_gifts_tips_and_every_counter(db):
    world(db)
    for user, post, action, amount in [(7, 1, "gift", Decimal("2.50")), (8, 1, "tip", Decimal("0.01")),
                                       (7, 1, "tip", Decimal("1000.99")), (7, 2, "save", 0), (9, 2, "praise", 0),
                                       (9, 2, "trophy", 0), (7, 4, "report", 0), (1, 1, "like", 0),
                                       (100, 2, "comment", 0), (1, 2, "share", 0)]:
        interact(db, user, post, action, amount, 3)
    result = assert_rebuild_reproduces(db)
    assert result["hidden_posts"] == 1


def test_the_rebuild_repairs_drift_and_is_idempotent(db):
    world(db)
    for user, post, action in [(7, 1, "like"), (8, 2, "comment"), (7, 3, "dislike"), (9, 4, "view")]:
        interact(db, user, post, action)
    watch(db, 9, 1, 12000, liked=True)
    with db.transaction(force_rollback=True):
        db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'heartbeat_min_change'")  # exact scores
        db.execute("SELECT feed.refresh_trending_scores('100 years')")
        expected = derived(db)
        db.execute("UPDATE feed.posts SET like_count = 40, view_count = 3 WHERE post_id = 1")
        db.execute("UPDATE feed.user_signals SET like_rate = 0.9")
        db.execute("DELETE FROM feed.seen_posts WHERE user_id = 7")
        db.execute("INSERT INTO feed.hidden_posts VALUES (9, 1, 'report', now())")
        db.execute("SELECT feed._rebuild_derived_state()")
        assert derived(db) == expected
        db.execute("SELECT feed._rebuild_derived_state()")
        assert derived(db) == expected
        assert db.execute("SELECT count(*) FROM feed.user_taste").fetchone()[0] > 0


def test_interactions_of_a_vanished_post_still_count_where_they_can(db):
    world(db)
    interact(db, 7, 1, "view")
    interact(db, 7, 2, "like")
    interact(db, 7, 2, "not_interested")
    db.execute("DELETE FROM feed.posts WHERE post_id = 2")
    with db.transaction(force_rollback=True):
        wipe_derived(db)
        db.execute("SELECT feed._rebuild_derived_state()")
        assert db.execute("SELECT post_id FROM feed.seen_posts ORDER BY 1").fetchall() == [(1,), (2,)]
        assert db.execute("SELECT post_id FROM feed.hidden_posts").fetchall() == [(2,)]
        assert db.execute("SELECT observations FROM feed.user_signals").fetchone() == (2,)
        assert db.execute("SELECT category FROM feed.user_category_affinity").fetchall() == [("jazz",)]


def test_only_posts_whose_counters_change_are_rescored(db):
    """Like the reflex update: other scores are the heartbeat's job (and rewriting
    every post would add an entry per post to every index, HNSW included)."""
    add_post(db, 1, age="30 days")
    add_post(db, 2, age="30 days")
    add_post(db, 3, age="1 hour")
    add_post(db, 4, age="1 hour")
    interact(db, 7, 2, "like")
    interact(db, 7, 4, "like")
    db.execute("UPDATE feed.posts SET trending_score = 42")
    db.execute("UPDATE feed.posts SET like_count = 0, trending_score = 42 WHERE post_id = 2")
    with db.transaction():
        result = db.execute("SELECT feed._rebuild_derived_state()").fetchone()[0]
        now = db.execute("SELECT now()").fetchone()[0]
        rows = {r[0]: r[1:] for r in db.execute(
            "SELECT post_id, like_count, created_at, trending_score FROM feed.posts").fetchall()}
    assert result["posts_updated"] == 1
    assert {post: row[2] for post, row in rows.items() if post != 2} == {1: 42, 3: 42, 4: 42}
    likes, created, score = rows[2]
    assert likes == 1 and score == pytest.approx(trending(1, 0, 0, 0, 0, created, now), rel=1e-12)


def test_the_rebuild_records_its_run_and_uses_the_operators_weights(db):
    db.execute("UPDATE feed.settings SET value = '7' WHERE name = 'trending_weight_comments'")
    world(db)
    interact(db, 7, 1, "comment")
    assert_rebuild_reproduces(db)
    db.execute("SELECT feed._rebuild_derived_state()")
    job = db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'rebuild'").fetchone()[0]
    assert job["seen_posts"] == 1 and job["user_signals"] == 1


def test_partial_rebuild_equals_the_full_one(db):
    world(db)
    for user, post, action in [(7, 1, "like"), (8, 1, "like"), (7, 2, "unlike"), (8, 3, "report"), (9, 4, "save"),
                               (7, 3, "share"), (9, 1, "view")]:
        interact(db, user, post, action)
    watch(db, 8, 3, 4000, liked=True)
    db.execute("SELECT feed.record_impressions(9, ARRAY[1, 2], 's')")
    with db.transaction(force_rollback=True):
        db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'heartbeat_min_change'")  # exact scores
        db.execute("SELECT feed.refresh_trending_scores('100 years')")
        expected = derived(db)
        db.execute("UPDATE feed.posts SET like_count = 9, trending_score = 0 WHERE post_id IN (1, 3)")
        for table in VIEWER_TABLES:
            db.execute(f"DELETE FROM feed.{table} WHERE user_id IN (7, 8)")
        db.execute("UPDATE feed.user_signals SET like_rate = 1 WHERE user_id = 9")
        db.execute("SELECT feed._rebuild_derived_state_for(ARRAY[7, 8, 9, 8], ARRAY[1, 3])")
        assert derived(db) == expected


@pytest.mark.parametrize("call,argument", [
    ("SELECT feed._rebuild_derived_state_for(NULL, '{}')", "p_user_ids"),
    ("SELECT feed._rebuild_derived_state_for('{}', NULL)", "p_post_ids"),
    ("SELECT feed._rebuild_derived_state_for(ARRAY[1, NULL], '{}')", "p_user_ids"),
])
def test_partial_rebuild_refuses_bad_arguments(db, call, argument):
    world(db)
    interact(db, 7, 1, "like")
    before = fingerprint(db)
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute(call)
    assert excinfo.value.sqlstate == "22023"
    assert excinfo.value.diag.message_primary.startswith(argument)
    assert fingerprint(db) == before


def test_rebuild_of_an_empty_database(db):
    result = db.execute("SELECT feed._rebuild_derived_state()").fetchone()[0]
    assert result["posts_updated"] == 0 and result["seen_posts"] == 0


def test_rebuild_functions_follow_the_file_conventions(db):
    rows = db.execute(
        "SELECT p.proname, p.provolatile, p.proconfig FROM pg_proc p"
        " WHERE p.pronamespace = 'feed'::regnamespace AND p.proname LIKE '\\_rebuild%'").fetchall()
    mine = {"_rebuild_derived", "_rebuild_derived_state", "_rebuild_derived_state_for"}
    assert {r[0] for r in rows} >= mine
    for name, volatility, config in (r for r in rows if r[0] in mine):
        assert volatility == "v", name
        assert "search_path=pg_catalog, pg_temp" in config, name


# ---------------------------------------------------------------------------
# the property: any sequence of events, each in its own transaction

ACTIONS = ["view", "like", "unlike", "comment", "share", "gift", "tip", "praise", "trophy", "save",
           "not_interested", "report", "dislike"]

event = st.one_of(
    st.tuples(st.just("interact"), st.integers(1, 4), st.integers(1, 4), st.sampled_from(ACTIONS)),
    st.tuples(st.just("interact"), st.integers(1, 4), st.integers(1, 4), st.sampled_from(["like", "unlike"])),
    st.tuples(st.just("watch"), st.integers(1, 4), st.integers(1, 4), st.integers(0, 30000), st.booleans(),
              st.booleans(), st.booleans()),
    st.tuples(st.just("impression"), st.integers(1, 4), st.integers(1, 4), st.sampled_from([None, "a", "b"]),
              st.integers(-3, 1)),
    st.tuples(st.just("impressions"), st.integers(1, 4), st.lists(st.integers(1, 4), min_size=1, max_size=4),
              st.sampled_from([None, "a", "c"])),
)


def play(db, ev) -> None:
    kind = ev[0]
    if kind == "interact":
        _, user, post, action = ev
        amount = Decimal("1.25") * post if action in ("gift", "tip") else 0
        interact(db, user, post, action, amount, user)
    elif kind == "watch":
        _, user, post, play_ms, liked, commented, shared = ev
        watch(db, user, post, play_ms, 20000, liked, commented, shared)
    elif kind == "impression":
        _, user, post, session, days = ev
        db.execute("SELECT feed.record_impression(%s, %s, NULL, NULL, %s, now() + %s * interval '1 day')",
                   [user, post, session, days])
    else:
        _, user, posts, session = ev
        db.execute("SELECT feed.record_impressions(%s, %s, %s)", [user, posts, session])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, max_size=40), half_life=st.sampled_from(["14 days", "5 milliseconds"]),
       alpha=st.sampled_from(["0.2", "0.7"]))
def test_rebuild_equals_the_write_path_for_any_event_sequence(db, events, half_life, alpha):
    db.execute("TRUNCATE feed.posts, feed.interactions, feed.impressions, feed.job_runs RESTART IDENTITY")
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'category_affinity_half_life'", [half_life])
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'ema_alpha'", [alpha])
    for table in VIEWER_TABLES:
        db.execute(f"TRUNCATE feed.{table}")
    world(db)
    for ev in events:
        play(db, ev)
    assert_rebuild_reproduces(db)


def test_the_rebuild_leaves_the_rescore_trigger_on(db):
    world(db)
    interact(db, 7, 1, "like")
    db.execute("SELECT feed._rebuild_derived_state()")
    assert db.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'posts_rescore'").fetchone() == ("O",)
    with db.transaction():
        db.execute("UPDATE feed.posts SET trending_score = -1 WHERE post_id = 1")
        # a counter moved by a statement that leaves the score to the engine: the trigger rescores
        db.execute("UPDATE feed.posts SET like_count = 5 WHERE post_id = 1")
        assert db.execute("SELECT trending_score > 0 FROM feed.posts WHERE post_id = 1").fetchone() == (True,)


def test_a_role_that_does_not_own_the_posts_can_rebuild_too(db):
    """Without ownership the trigger cannot be switched off; it recomputes the same scores."""
    world(db)
    for user, action in [(7, "like"), (8, "comment"), (7, "unlike")]:
        interact(db, user, 2, action)
    role = f"pgfeed_rebuilder_{db.info.backend_pid}"
    # BYPASSRLS: row-level security shows the log only to its owner and to each viewer
    db.execute(f"CREATE ROLE {role} BYPASSRLS")
    try:
        db.execute(f"GRANT USAGE ON SCHEMA feed TO {role}")
        db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA feed TO {role}")
        # the engine's private functions are granted to no one: an operator grants them
        db.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA feed TO {role}")
        with db.transaction(force_rollback=True):
            db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'heartbeat_min_change'")  # exact scores
            db.execute("SELECT feed.refresh_trending_scores('100 years')")
            expected = derived(db)
            wipe_derived(db)
            db.execute(f"SET LOCAL ROLE {role}")
            db.execute("SELECT feed._rebuild_derived_state()")
            db.execute("RESET ROLE")
            assert derived(db) == expected
    finally:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")
