"""The engagement write path: counters, reflex score, per-viewer signals, impressions, bad input."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import add_post, fingerprint, trending


def interact(db, user, post, action, amount=0, seconds=0):
    return db.execute("SELECT feed.record_interaction(%s, %s, %s, %s, %s)",
                      [user, post, action, amount, seconds]).fetchone()[0]


def counters(db, post):
    return db.execute(
        "SELECT like_count, comment_count, share_count, view_count, gift_amount, tip_amount,"
        " praise_count, trophy_count, save_count, report_count FROM feed.posts WHERE post_id = %s", [post]
    ).fetchone()


EFFECTS = {
    # action: (likes, comments, shares, views, gift, tip, praise, trophy, save, report)
    "view": (0, 0, 0, 1, 0, 0, 0, 0, 0, 0),
    "like": (1, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "comment": (0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
    "share": (0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
    "gift": (0, 0, 0, 0, Decimal("2.50"), 0, 0, 0, 0, 0),
    "tip": (0, 0, 0, 0, 0, Decimal("1.25"), 0, 0, 0, 0),
    "praise": (0, 0, 0, 0, 0, 0, 1, 0, 0, 0),
    "trophy": (0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    "save": (0, 0, 0, 0, 0, 0, 0, 0, 1, 0),
    "report": (0, 0, 0, 0, 0, 0, 0, 0, 0, 1),
    "not_interested": (0,) * 10,
    "dislike": (0,) * 10,
}


@pytest.mark.parametrize("action", sorted(EFFECTS))
def test_each_action_moves_exactly_its_counters_and_logs_once(db, action):
    add_post(db, 1, like_count=3)
    before = counters(db, 1)
    amount = {"gift": Decimal("2.50"), "tip": Decimal("1.25")}.get(action, 0)
    interaction_id = interact(db, 7, 1, action, amount, 12)
    after = counters(db, 1)
    assert tuple(a - b for a, b in zip(after, before)) == EFFECTS[action]
    log = db.execute("SELECT user_id, post_id, action, value_amount, time_spent_seconds FROM feed.interactions"
                     " WHERE interaction_id = %s", [interaction_id]).fetchone()
    assert log == (7, 1, action, Decimal(amount).quantize(Decimal("0.01")), 12)
    assert db.execute("SELECT count(*) FROM feed.interactions").fetchone()[0] == 1
    # an interaction implies the viewer saw the post
    assert db.execute("SELECT times_seen FROM feed.seen_posts WHERE user_id = 7 AND post_id = 1").fetchone() == (1,)


def test_unlike_never_drives_the_count_below_zero(db):
    add_post(db, 1)
    interact(db, 7, 1, "like")
    interact(db, 7, 1, "unlike")
    interact(db, 8, 1, "unlike")
    assert counters(db, 1)[0] == 0
    assert db.execute("SELECT count(*) FROM feed.interactions WHERE action = 'unlike'").fetchone()[0] == 2


def test_reflex_update_recomputes_trending_score_in_the_same_transaction(db):
    add_post(db, 1, age="5 hours", like_count=4, comment_count=1)
    with db.transaction():
        interact(db, 7, 1, "like")
        interact(db, 8, 1, "share")
        interact(db, 9, 1, "gift", Decimal("3.00"))
        now, created, score = db.execute(
            "SELECT now(), created_at, trending_score FROM feed.posts WHERE post_id = 1").fetchone()
    assert score == pytest.approx(trending(5, 1, 1, 3, 0, created, now), rel=1e-12)


def test_reflex_uses_the_operators_weights(db):
    db.execute("UPDATE feed.settings SET value = '10' WHERE name = 'trending_weight_likes'")
    db.execute("UPDATE feed.settings SET value = '1.5' WHERE name = 'gravity'")
    add_post(db, 1, age="2 hours")
    with db.transaction():
        interact(db, 7, 1, "like")
        now, created, score = db.execute(
            "SELECT now(), created_at, trending_score FROM feed.posts WHERE post_id = 1").fetchone()
    weights = {"likes": 10, "comments": 3, "shares": 5, "gifts": 50, "tips": 50, "gravity": 1.5}
    assert score == pytest.approx(trending(1, 0, 0, 0, 0, created, now, weights), rel=1e-12)


def test_trending_score_is_the_seed_formula_with_its_plus_one(db):
    row = db.execute(
        "SELECT feed.trending_score(10, 2, 1, 1.50, 0.50, '2026-01-01 00:00+00', '2026-01-01 10:00+00'),"
        " feed.trending_score(0, 0, 0, 0, 0, '2026-01-01 00:00+00', '2026-01-01 00:00+00'),"
        " feed.trending_score(0, 0, 0, 0, 0, '2026-01-02 00:00+00', '2026-01-01 00:00+00')"
    ).fetchone()
    assert row[0] == pytest.approx((10 + 6 + 5 + 75 + 25 + 1) / 12 ** 1.8, rel=1e-12)
    assert row[1] == pytest.approx(1 / 2 ** 1.8, rel=1e-12)
    assert row[2] == pytest.approx(1 / 2 ** 1.8, rel=1e-12), "a post dated in the future scores as brand new"
    volatility = db.execute("SELECT provolatile FROM pg_proc WHERE oid = 'feed.trending_score'::regproc").fetchone()
    assert volatility == ("i",)


def test_new_posts_start_with_their_formula_score(db):
    with db.transaction():
        add_post(db, 1, age="3 hours")
        now, created, score = db.execute(
            "SELECT now(), created_at, trending_score FROM feed.posts WHERE post_id = 1").fetchone()
    assert score == pytest.approx(trending(0, 0, 0, 0, 0, created, now), rel=1e-12)


@pytest.mark.parametrize("action", ["not_interested", "dislike", "report"])
def test_negative_actions_hide_the_post_for_good(db, action):
    add_post(db, 1)
    interact(db, 7, 1, action)
    interact(db, 7, 1, "dislike")
    assert db.execute("SELECT reason FROM feed.hidden_posts WHERE user_id = 7 AND post_id = 1").fetchone() == (action,)


def test_author_affinity_counts_by_kind(db):
    add_post(db, 1, author_id=50)
    add_post(db, 2, author_id=50)
    for post, action in [(1, "like"), (2, "like"), (1, "praise"), (2, "trophy"), (1, "comment"), (1, "view"),
                         (2, "unlike")]:
        interact(db, 7, post, action)
    row = db.execute(
        "SELECT like_count, praise_count, trophy_count, comment_count, view_count, negative_count,"
        " last_positive_at IS NOT NULL FROM feed.user_author_affinity WHERE user_id = 7 AND author_id = 50"
    ).fetchone()
    assert row == (1, 1, 1, 1, 1, 0, True)


def test_a_view_alone_is_not_a_positive_interaction(db):
    add_post(db, 1, author_id=50)
    interact(db, 7, 1, "view")
    assert db.execute("SELECT view_count, last_positive_at FROM feed.user_author_affinity"
                      " WHERE user_id = 7").fetchone() == (1, None)


def test_interacting_with_your_own_post_builds_no_author_affinity(db):
    add_post(db, 1, author_id=7)
    interact(db, 7, 1, "like")
    assert db.execute("SELECT count(*) FROM feed.user_author_affinity").fetchone()[0] == 0


def test_post_type_preference_counts_hearts_praise_trophies(db):
    add_post(db, 1, post_type="image")
    add_post(db, 2, post_type="novel")
    for post, action in [(1, "like"), (1, "praise"), (2, "trophy"), (1, "comment"), (1, "share"), (2, "like"),
                         (2, "unlike")]:
        interact(db, 7, post, action)
    rows = dict(db.execute("SELECT post_type, interaction_count FROM feed.user_post_type_affinity"
                           " WHERE user_id = 7").fetchall())
    assert rows == {"image": 2, "novel": 1}


def test_category_affinity_decays_then_moves(db):
    add_post(db, 1, category="jazz")
    # one transaction, so that no wall-clock time passes between the statements
    # (the half-life is 14 days: a few milliseconds between statements would
    # already move the value by about 1e-9)
    with db.transaction():
        db.execute("INSERT INTO feed.user_category_affinity VALUES (7, 'jazz', 0.8, now() - interval '14 days')")
        interact(db, 7, 1, "like")
        value = db.execute("SELECT affinity FROM feed.user_category_affinity WHERE user_id = 7").fetchone()[0]
    assert value == pytest.approx(0.8 * 0.5 + 0.10, abs=1e-9)


def test_category_affinity_stays_within_bounds(db):
    add_post(db, 1, category="jazz")
    for _ in range(6):
        interact(db, 7, 1, "trophy")
    assert db.execute("SELECT affinity FROM feed.user_category_affinity").fetchone()[0] == pytest.approx(1.0)
    for _ in range(5):
        interact(db, 7, 1, "report")
    assert db.execute("SELECT affinity FROM feed.user_category_affinity").fetchone()[0] == pytest.approx(-1.0)


def test_ema_interest_signals(db):
    add_post(db, 1)
    interact(db, 7, 1, "view")      # first observation: rates set outright
    interact(db, 7, 1, "like")      # 0.8 * 0 + 0.2 * 1
    interact(db, 7, 1, "like")      # 0.8 * 0.2 + 0.2 * 1
    interact(db, 7, 1, "comment")   # like: 0.8 * 0.36; comment: 0.2
    interact(db, 7, 1, "praise")    # not an exposure: no change
    row = db.execute("SELECT like_rate, comment_rate, share_rate, watch_ratio, observations"
                     " FROM feed.user_signals WHERE user_id = 7").fetchone()
    assert row[0] == pytest.approx(0.8 * 0.36)
    assert row[1] == pytest.approx(0.2)
    assert row[2] == 0 and row[3] is None and row[4] == 4


def test_ema_alpha_comes_from_settings(db):
    db.execute("UPDATE feed.settings SET value = '0.5' WHERE name = 'ema_alpha'")
    add_post(db, 1)
    interact(db, 7, 1, "view")
    interact(db, 7, 1, "like")
    assert db.execute("SELECT like_rate FROM feed.user_signals").fetchone()[0] == pytest.approx(0.5)


def test_watch_progress(db):
    add_post(db, 1, author_id=50, duration_ms=20000)
    db.execute("SELECT feed.record_watch_progress(7, 1, 15000, 20000)")
    db.execute("SELECT feed.record_watch_progress(7, 1, 45000, 20000, true, false, true)")
    post = db.execute("SELECT view_count, watch_count, watch_ratio_sum, like_count, share_count, comment_count"
                      " FROM feed.posts WHERE post_id = 1").fetchone()
    assert post == (2, 2, pytest.approx(1.75), 1, 1, 0)
    signals = db.execute("SELECT watch_ratio, like_rate, share_rate, watches FROM feed.user_signals").fetchone()
    assert signals == (pytest.approx(0.8 * 0.75 + 0.2 * 1.0), pytest.approx(0.2), pytest.approx(0.2), 2)
    log = db.execute("SELECT action, time_spent_seconds, watch_ratio FROM feed.interactions"
                     " ORDER BY interaction_id").fetchall()
    assert log == [("view", 15, 0.75), ("view", 45, 1.0), ("like", 0, None), ("share", 0, None)]
    assert db.execute("SELECT like_count, share_count, view_count FROM feed.user_author_affinity").fetchone() == (1, 1, 2)


def test_impressions_count_once_per_viewer_post_session(db):
    add_post(db, 1)
    add_post(db, 2)
    for _ in range(3):
        db.execute("SELECT feed.record_impression(7, 1, 'trending', 0.5, 's1')")
    db.execute("SELECT feed.record_impression(7, 1, 'trending', 0.5, 's2')")
    assert db.execute("SELECT count(*) FROM feed.impressions").fetchone()[0] == 2
    assert db.execute("SELECT times_seen FROM feed.seen_posts WHERE post_id = 1").fetchone()[0] == 2
    assert db.execute("SELECT feed.record_impressions(7, ARRAY[1, 2, 2], 's1')").fetchone()[0] == 1
    assert db.execute("SELECT feed.record_impressions(7, ARRAY[1, 2], 's1')").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM feed.impressions").fetchone()[0] == 3
    row = db.execute("SELECT source, score, session_id FROM feed.impressions WHERE post_id = 1 AND session_id = 's1'"
                     ).fetchone()
    assert row == ("trending", 0.5, "s1")


def test_impression_keeps_the_latest_sighting(db):
    add_post(db, 1)
    db.execute("SELECT feed.record_impression(7, 1, NULL, NULL, 'a', now() - interval '3 days')")
    db.execute("SELECT feed.record_impression(7, 1, NULL, NULL, 'b', now() - interval '5 days')")
    first, last = db.execute("SELECT now() - first_seen_at, now() - last_seen_at FROM feed.seen_posts").fetchone()
    assert first.days == 5 and last.days == 3


BAD_CALLS = [
    ("unknown action", "SELECT feed.record_interaction(1, 1, 'poke')", "22023", "p_action"),
    ("null action", "SELECT feed.record_interaction(1, 1, NULL)", "22023", "p_action"),
    ("null user", "SELECT feed.record_interaction(NULL, 1, 'like')", "22023", "p_user_id"),
    ("null post", "SELECT feed.record_interaction(1, NULL, 'like')", "22023", "p_post_id"),
    ("gift without amount", "SELECT feed.record_interaction(1, 1, 'gift')", "22023", "p_value_amount"),
    ("negative tip", "SELECT feed.record_interaction(1, 1, 'tip', -5)", "22023", "p_value_amount"),
    ("null amount", "SELECT feed.record_interaction(1, 1, 'gift', NULL)", "22023", "p_value_amount"),
    ("amount on a like", "SELECT feed.record_interaction(1, 1, 'like', 3)", "22023", "p_value_amount"),
    ("amount too precise", "SELECT feed.record_interaction(1, 1, 'tip', 0.001)", "22023", "p_value_amount"),
    ("amount too large", "SELECT feed.record_interaction(1, 1, 'tip', 1e12)", "22023", "p_value_amount"),
    ("negative time", "SELECT feed.record_interaction(1, 1, 'view', 0, -1)", "22023", "p_time_spent_seconds"),
    ("unknown post", "SELECT feed.record_interaction(1, 999, 'like')", "23503", "p_post_id"),
    ("impression unknown post", "SELECT feed.record_impression(1, 999)", "23503", "p_post_id"),
    ("impression null user", "SELECT feed.record_impression(NULL, 1)", "22023", "p_user_id"),
    ("impression null time", "SELECT feed.record_impression(1, 1, NULL, NULL, NULL, NULL)", "22023", "p_visible_at"),
    ("batch unknown post", "SELECT feed.record_impressions(1, ARRAY[1, 999])", "23503", "p_post_ids"),
    ("batch null array", "SELECT feed.record_impressions(1, NULL)", "22023", "p_post_ids"),
    ("batch null element", "SELECT feed.record_impressions(1, ARRAY[1, NULL])", "22023", "p_post_ids"),
    ("watch zero duration", "SELECT feed.record_watch_progress(1, 1, 100, 0)", "22023", "p_duration_ms"),
    ("watch negative play", "SELECT feed.record_watch_progress(1, 1, -1, 100)", "22023", "p_play_ms"),
    ("watch null play", "SELECT feed.record_watch_progress(1, 1, NULL, 100)", "22023", "p_play_ms"),
    ("watch null flag", "SELECT feed.record_watch_progress(1, 1, 10, 100, NULL)", "22023", "p_liked"),
    ("watch unknown post", "SELECT feed.record_watch_progress(1, 999, 10, 100)", "23503", "p_post_id"),
    ("heartbeat negative window", "SELECT feed.refresh_trending_scores('-1 day')", "22023", "p_window"),
    ("heartbeat null window", "SELECT feed.refresh_trending_scores(NULL)", "22023", "p_window"),
]


@pytest.mark.parametrize("label,statement,sqlstate,argument", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_its_sqlstate_and_writes_nothing(db, label, statement, sqlstate, argument):
    add_post(db, 1)
    interact(db, 2, 1, "like")
    before = fingerprint(db)
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute(statement)
    assert excinfo.value.sqlstate == sqlstate
    assert argument in excinfo.value.diag.message_primary
    assert fingerprint(db) == before


ACTIONS = ["view", "like", "unlike", "comment", "share", "gift", "tip", "praise", "trophy", "save"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.sampled_from(ACTIONS)), max_size=30))
def test_counters_equal_a_replay_of_the_events(db, events):
    """Property: whatever the sequence, counters equal a plain replay (unlike floors at zero)."""
    db.execute("TRUNCATE feed.posts, feed.interactions, feed.seen_posts, feed.user_author_affinity,"
               " feed.user_post_type_affinity, feed.user_category_affinity, feed.user_signals")
    for post in (1, 2, 3):
        add_post(db, post, author_id=100 + post)
    expected = {post: {"like": 0, "comment": 0, "share": 0, "view": 0, "gift": Decimal(0), "tip": Decimal(0)}
                for post in (1, 2, 3)}
    for user, post, action in events:
        amount = Decimal("1.50") if action in ("gift", "tip") else 0
        interact(db, user, post, action, amount)
        model = expected[post]
        if action == "unlike":
            model["like"] = max(model["like"] - 1, 0)
        elif action in ("gift", "tip"):
            model[action] += amount
        elif action in model:
            model[action] += 1
    for post, model in expected.items():
        got = counters(db, post)[:6]
        assert got == (model["like"], model["comment"], model["share"], model["view"], model["gift"], model["tip"])
    assert db.execute("SELECT count(*) FROM feed.interactions").fetchone()[0] == len(events)
