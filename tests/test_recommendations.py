"""build_recommendations (item-to-item collaborative filtering) and _live_collaborative."""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from datetime import timedelta

import psycopg
import pytest

from .helpers import add_post

POSITIVE = {"like", "comment", "share", "save", "praise", "trophy", "gift", "tip"}


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture(autouse=True)
def one_viewer_is_enough(db):
    """These worlds are tiny: let a single shared viewer make two posts neighbours
    (the default, 2, is tested on its own). The item-KNN weights
    (recommendation_regularization 0) are what this file checks; the regression
    weights are checked in test_regression.py, on top of the same steps."""
    db.execute("UPDATE feed.settings SET value = '1' WHERE name = 'recommendation_min_support'")
    db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'recommendation_regularization'")

def log(db, user, post, action="like", minutes_ago=60.0, watch_ratio=None, amount=0):
    """An interaction straight into the log at a chosen time (as a bulk loader would)."""
    db.execute(
        "INSERT INTO feed.interactions (user_id, post_id, action, value_amount, watch_ratio, created_at)"
        " VALUES (%s, %s, %s, %s, %s, now() - %s * interval '1 minute')",
        [user, post, action, amount, watch_ratio, minutes_ago])


def build(db, lookback="30 days", only_changed=None):
    if only_changed is None:
        return db.execute("SELECT feed.build_recommendations(%s::interval)", [lookback]).fetchone()[0]
    return db.execute("SELECT feed.build_recommendations(%s::interval, %s)", [lookback, only_changed]).fetchone()[0]


def recs(db, user):
    return db.execute("SELECT post_id, score, explanation FROM feed.recommendations WHERE user_id = %s"
                      " ORDER BY score DESC, post_id", [user]).fetchall()


def rec_ids(db, user):
    return [r[0] for r in recs(db, user)]


def settings(db) -> dict:
    return {name: value for name, value in db.execute("SELECT name, value FROM feed.settings")}


def posts(db, *ids, **columns):
    for post_id in ids:
        add_post(db, post_id, author_id=1000 + post_id, **columns)


def reference(events, touched, hidden, post_rows, cfg):
    """The documented algorithm, in plain Python, on a small world.

    events: (user, post, action, minutes_ago, watch_ratio) within the lookback;
    touched: user -> every post of theirs in the whole log; hidden: {(user, post)};
    post_rows: post_id -> (author_id, eligible). Returns (neighbours, recommendations)."""
    history_cap = int(cfg["recommendation_history"])
    pair_cap = int(cfg["recommendation_pair_history"])
    g = float(cfg["recommendation_history_exponent"])
    b = float(cfg["recommendation_popularity_exponent"])
    shrink = float(cfg["recommendation_shrinkage"])
    k = int(cfg["recommendation_neighbors"])
    support = int(cfg["recommendation_min_support"])
    per_user = int(cfg["recommendations_per_user"])
    min_ratio = float(cfg["recommendation_min_watch_ratio"])
    recency = float(cfg["recommendation_recency_exponent"])

    per_pair = defaultdict(list)
    for user, post, action, ago, ratio in events:
        if action in POSITIVE or action == "unlike" or (action == "view" and ratio is not None and ratio >= min_ratio):
            per_pair[(user, post)].append((action, ago))
    history = defaultdict(list)
    for (user, post), acts in per_pair.items():
        other = any(a not in ("like", "unlike") for a, _ in acts)
        likes = sum(1 if a == "like" else -1 if a == "unlike" else 0 for a, _ in acts)
        if (other or likes > 0) and (user, post) not in hidden:
            history[user].append((min(ago for _, ago in acts), post))
    for user in history:
        history[user] = [post for _, post in sorted(history[user], key=lambda x: (x[0], -x[1]))]

    viewers = defaultdict(int)
    together = defaultdict(float)
    count = defaultdict(int)
    for user, items in history.items():
        paired = items[:pair_cap]
        weight = min(len(items), pair_cap) ** -g
        for i in paired:
            viewers[i] += 1
            for j in paired:
                if i != j:
                    together[(i, j)] += weight
                    count[(i, j)] += 1
    sims = defaultdict(list)
    for (i, j), t in together.items():
        # only posts anybody may see become neighbours, and only with enough shared viewers
        if count[(i, j)] >= support and j in post_rows and post_rows[j][1]:
            sims[i].append((t / (viewers[i] * viewers[j] ** b + shrink), j))
    neighbours = {}
    for i, lst in sims.items():
        for s, j in sorted(lst, key=lambda x: (-x[0], x[1]))[:k]:
            neighbours[(i, j)] = s

    result = {}
    for user, items in history.items():
        scores = defaultdict(float)
        contributors = defaultdict(list)
        for r, i in enumerate(items[:history_cap], start=1):
            for (a, j), s in neighbours.items():
                if a == i:
                    scores[j] += s * r ** -recency
                    contributors[j].append((-s * r ** -recency, i))
        kept = [(s, j) for j, s in scores.items()
                if post_rows[j][1] and post_rows[j][0] != user and j not in touched[user] and (user, j) not in hidden]
        kept.sort(key=lambda x: (-x[0], x[1]))
        kept = kept[:per_user]
        if kept:
            best = kept[0][0]
            result[user] = [(j, s / best, [i for _, i in sorted(contributors[j])[:3]], s) for s, j in kept]
    return neighbours, result


# ---------------------------------------------------------------------------
# the algorithm

def test_a_tiny_world_with_a_known_answer(db):
    """Viewers 1 and 2 liked posts 1 and 2, viewer 2 also post 3, viewer 3 only post 1.
    Viewer 3 should get 2 (liked together with 1 twice) before 3 (once), because of 1."""
    posts(db, 1, 2, 3, 4)
    for user, post, ago in [(1, 1, 50), (1, 2, 40), (2, 1, 30), (2, 2, 20), (2, 3, 10), (3, 1, 5)]:
        log(db, user, post, minutes_ago=ago)
    written = build(db)

    g, b, shrink = 0.75, 0.55, 20.0
    w1, w2 = 2 ** -g, 3 ** -g                 # viewer weights: 2 and 3 liked posts
    n = {1: 3, 2: 2, 3: 1}                     # viewers per post
    sim_1_2 = (w1 + w2) / (n[1] * n[2] ** b + shrink)
    sim_1_3 = w2 / (n[1] * n[3] ** b + shrink)
    neighbours = dict(((p, q), s) for p, q, s in db.execute(
        "SELECT post_id, neighbor_id, score FROM feed.item_neighbors"))
    assert neighbours[(1, 2)] == pytest.approx(sim_1_2)
    assert neighbours[(1, 3)] == pytest.approx(sim_1_3)
    assert neighbours[(3, 1)] == pytest.approx(w2 / (n[3] * n[1] ** b + shrink))
    assert (1, 4) not in neighbours and (4, 1) not in neighbours

    got = recs(db, 3)
    assert [r[0] for r in got] == [2, 3]
    assert got[0][1] == pytest.approx(1.0)
    assert got[1][1] == pytest.approx(sim_1_3 / sim_1_2)
    assert got[0][2]["because"] == [1] and got[1][2]["because"] == [1]
    assert got[0][2]["raw_score"] == pytest.approx(sim_1_2)
    # viewer 1 gets 3 (from 1 and 2), viewer 2 has seen everything that co-occurs
    assert rec_ids(db, 1) == [3]
    assert rec_ids(db, 2) == []
    assert written == 3
    assert db.execute("SELECT DISTINCT algorithm FROM feed.recommendations").fetchall() == [("itemknn",)]


@pytest.mark.parametrize("support, recency", [(1, "0"), (2, "0"), (3, "0"), (2, "1"), (2, "0.5")])
def test_a_random_world_matches_the_reference_implementation(db, support, recency):
    rng = random.Random(5)
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'recommendation_recency_exponent'", [recency])
    n_posts, n_users = 40, 25
    for p in range(1, n_posts + 1):
        add_post(db, p, author_id=rng.choice([1, 2, 3, 1000 + p]))   # viewers 1..3 author some posts
    db.execute("UPDATE feed.posts SET is_deleted = true WHERE post_id IN (7, 8)")
    db.execute("UPDATE feed.posts SET visibility = 'shadow_ban' WHERE post_id = 9")
    events, hidden = [], set()
    actions = ["like"] * 6 + ["comment", "share", "save", "view", "unlike", "praise", "gift"]
    for _ in range(400):
        user, post = rng.randint(1, n_users), rng.randint(1, n_posts)
        # popular posts are more popular
        post = min(post, rng.randint(1, n_posts))
        action = rng.choice(actions)
        ratio = round(rng.random(), 2) if action == "view" and rng.random() < 0.7 else None
        ago = rng.uniform(1, 60 * 24 * 40)        # some fall outside the 30-day lookback
        if abs(ago - 30 * 24 * 60) < 10:
            ago += 20                             # not on the boundary itself
        log(db, user, post, action, ago, ratio, 1 if action == "gift" else 0)
        events.append((user, post, action, ago, ratio))
    for _ in range(15):
        user, post = rng.randint(1, n_users), rng.randint(1, n_posts)
        db.execute("INSERT INTO feed.hidden_posts (user_id, post_id, reason) VALUES (%s, %s, 'dislike')"
                   " ON CONFLICT DO NOTHING", [user, post])
        hidden.add((user, post))
    db.execute("UPDATE feed.settings SET value = '6' WHERE name = 'recommendation_neighbors'")
    db.execute("UPDATE feed.settings SET value = '5' WHERE name = 'recommendations_per_user'")
    db.execute("UPDATE feed.settings SET value = '8' WHERE name = 'recommendation_history'")
    db.execute("UPDATE feed.settings SET value = '5' WHERE name = 'recommendation_pair_history'")
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'recommendation_min_support'", [str(support)])
    cfg = settings(db)
    post_rows = {p: (a, not d and v == "public") for p, a, d, v in db.execute(
        "SELECT post_id, author_id, is_deleted, visibility FROM feed.posts")}

    written = build(db)
    # the window decides the signals; the whole log what a viewer already interacted with
    in_window = [e for e in events if e[3] < 30 * 24 * 60]
    touched = defaultdict(set)
    for user, post, *_ in events:
        touched[user].add(post)
    want_neighbours, want_recs = reference(in_window, touched, hidden, post_rows, cfg)

    got_neighbours = {(p, q): s for p, q, s in db.execute("SELECT post_id, neighbor_id, score FROM feed.item_neighbors")}
    assert got_neighbours.keys() == want_neighbours.keys()
    for key, score in want_neighbours.items():
        assert got_neighbours[key] == pytest.approx(score)

    total = 0
    for user in range(1, n_users + 1):
        want = want_recs.get(user, [])
        got = recs(db, user)
        assert [r[0] for r in got] == [r[0] for r in want], user
        for (post, score, explanation), (_, want_score, because, raw) in zip(got, want):
            assert score == pytest.approx(want_score)
            assert explanation["because"] == because
            assert explanation["raw_score"] == pytest.approx(raw)
        total += len(got)
    assert written == total > 0


def test_neighbours_need_min_support_viewers_in_common(db):
    db.execute("UPDATE feed.settings SET value = default_value WHERE name = 'recommendation_min_support'")
    posts(db, 1, 2, 3)
    for user, items in {1: [1, 2, 3], 2: [1, 2], 3: [1]}.items():
        for post in items:
            log(db, user, post)
    build(db)
    # 1 and 2 share two viewers; 3 shares one with each
    assert sorted(db.execute("SELECT post_id, neighbor_id FROM feed.item_neighbors").fetchall()) == [(1, 2), (2, 1)]
    assert rec_ids(db, 3) == [2]
    db.execute("UPDATE feed.settings SET value = '3' WHERE name = 'recommendation_min_support'")
    assert build(db) == 0
    assert db.execute("SELECT count(*) FROM feed.item_neighbors").fetchone()[0] == 0


def test_scores_are_normalized_per_viewer(db):
    posts(db, *range(1, 9))
    rng = random.Random(3)
    for user in range(1, 12):
        for post in rng.sample(range(1, 9), 4):
            log(db, user, post, minutes_ago=rng.uniform(5, 500))
    build(db)
    rows = db.execute("SELECT user_id, max(score), min(score) FROM feed.recommendations GROUP BY user_id").fetchall()
    assert rows
    for _, best, worst in rows:
        assert best == pytest.approx(1.0)
        assert 0 < worst <= 1.0


# ---------------------------------------------------------------------------
# what counts as a signal

def test_positive_signals_and_lookback(db):
    posts(db, 1, 2, 3, 4, 5, 6)
    # viewers 1..4 all pair post 1 with another post, in different ways
    log(db, 1, 1); log(db, 1, 2, "comment")
    log(db, 2, 1); log(db, 2, 3, "view", watch_ratio=0.8)     # a watched view counts
    log(db, 3, 1); log(db, 3, 4, "view", watch_ratio=0.2)     # a skipped view does not
    log(db, 4, 1); log(db, 4, 5, "like", minutes_ago=90); log(db, 4, 5, "unlike", minutes_ago=80)  # undone
    log(db, 5, 1); log(db, 5, 6, "like", minutes_ago=60 * 24 * 31)                              # too old
    log(db, 9, 1, "share")
    build(db)
    assert sorted(rec_ids(db, 9)) == [2, 3]
    # a longer lookback brings the old like back
    build(db, "60 days")
    assert 6 in rec_ids(db, 9)


def test_exclusions(db):
    posts(db, *range(1, 10))
    add_post(db, 20, author_id=9)           # viewer 9's own post
    add_post(db, 21, author_id=2021, is_deleted=True)
    add_post(db, 22, author_id=2022, visibility="removed")
    add_post(db, 23, author_id=2023, visibility="shadow_ban")
    add_post(db, 24, author_id=2024, media_ready=False)
    add_post(db, 25, author_id=2025, duration_ms=180001)
    add_post(db, 26, author_id=2026, duration_ms=180000)     # at the cap: fine
    others = [2, 3, 4, 5, 20, 21, 22, 23, 24, 25, 26]
    for user in (1, 2, 3):
        log(db, user, 1)
        for post in others:
            log(db, user, post, minutes_ago=30)
    log(db, 9, 1)
    log(db, 9, 2, "view")                                           # interacted (even a plain view)
    log(db, 9, 3, "view", minutes_ago=60 * 24 * 365)                # interacted long ago
    db.execute("INSERT INTO feed.hidden_posts (user_id, post_id, reason) VALUES (9, 4, 'not_interested')")
    build(db)
    assert sorted(rec_ids(db, 9)) == [5, 26]


def test_hidden_posts_are_not_history(db):
    posts(db, 1, 2, 3)
    log(db, 1, 1); log(db, 1, 2)
    log(db, 2, 1); log(db, 2, 3)
    log(db, 9, 2); log(db, 9, 3, "like")
    db.execute("INSERT INTO feed.hidden_posts (user_id, post_id, reason) VALUES (9, 3, 'report')")
    build(db)
    # viewer 9's history is post 2 alone, whose only neighbour is 1
    assert rec_ids(db, 9) == [1]
    assert recs(db, 9)[0][2]["because"] == [2]


def test_explanation_names_the_viewers_posts_that_contributed_most(db):
    posts(db, *range(1, 8))
    # post 7 co-occurs with 1 (three times), 2 (twice), 3 and 4 (once each)
    for user, extra in [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]), (4, [4])]:
        log(db, user, 7, minutes_ago=100)
        for post in extra:
            log(db, user, post, minutes_ago=90)
    for post, ago in [(1, 10), (2, 20), (3, 30), (4, 40)]:
        log(db, 9, post, minutes_ago=ago)
    build(db)
    top = recs(db, 9)[0]
    assert top[0] == 7
    neighbours = {q: s for q, s in db.execute(
        "SELECT post_id, score FROM feed.item_neighbors WHERE neighbor_id = 7 AND post_id IN (1, 2, 3, 4)")}
    want = sorted(neighbours, key=lambda q: (-neighbours[q], q))[:3]
    assert top[2]["because"] == want
    assert len(top[2]["because"]) == 3


# ---------------------------------------------------------------------------
# expiry, incremental runs, replacement

def test_generated_and_expires_at(db):
    posts(db, 1, 2)
    log(db, 1, 1); log(db, 1, 2); log(db, 2, 1)
    db.execute("BEGIN")
    build(db)
    now = db.execute("SELECT now()").fetchone()[0]
    db.execute("COMMIT")
    generated, expires = db.execute("SELECT generated_at, expires_at FROM feed.recommendations").fetchone()
    assert generated == now
    assert expires - generated == timedelta(hours=24)

    db.execute("UPDATE feed.settings SET value = '2 hours' WHERE name = 'recommendation_ttl'")
    build(db)
    generated, expires = db.execute("SELECT generated_at, expires_at FROM feed.recommendations").fetchone()
    assert expires - generated == timedelta(hours=2)
    run = db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'build_recommendations'").fetchone()[0]
    assert run["mode"] == "full" and run["recommendations"] == 1 and run["viewers"] == 2


def test_a_full_run_replaces_everything(db):
    posts(db, 1, 2, 3)
    log(db, 1, 1); log(db, 1, 2); log(db, 2, 1)
    assert build(db) == 1
    # viewer 2's only like is undone: no history, no recommendations left
    log(db, 2, 1, "unlike", minutes_ago=1)
    db.execute("INSERT INTO feed.recommendations (user_id, post_id, score, algorithm, expires_at)"
               " VALUES (5, 3, 1, 'itemknn', now() + interval '1 day')")
    assert build(db) == 0
    assert db.execute("SELECT count(*) FROM feed.recommendations").fetchone()[0] == 0


def test_incremental_run_rebuilds_only_viewers_with_new_interactions(db):
    posts(db, *range(1, 7))
    for user, items in {1: [1, 2, 3], 2: [1, 2, 4], 3: [2, 5], 4: [1], 5: [2]}.items():
        for post in items:
            log(db, user, post, minutes_ago=120)
    build(db)
    before = {r[0]: r for r in db.execute(
        "SELECT user_id, array_agg(post_id ORDER BY post_id), min(generated_at) FROM feed.recommendations GROUP BY 1")}
    neighbours_before = db.execute("SELECT count(*), sum(score) FROM feed.item_neighbors").fetchone()
    assert {4, 5} <= before.keys()

    # viewer 4 acts again, viewer 6 is new; neither changes the item neighbours of an incremental run
    db.execute("SELECT feed.record_interaction(4, 5, 'like')")
    db.execute("SELECT feed.record_interaction(6, 3, 'save')")
    written = build(db, only_changed=True)
    after = {r[0]: r for r in db.execute(
        "SELECT user_id, array_agg(post_id ORDER BY post_id), min(generated_at) FROM feed.recommendations GROUP BY 1")}
    assert db.execute("SELECT count(*), sum(score) FROM feed.item_neighbors").fetchone() == neighbours_before
    for user in (1, 2, 3, 5):
        assert after[user] == before[user]
    assert after[4][2] > before[4][2]
    assert 5 not in after[4][1]
    assert 6 in after
    assert written == sum(len(after[u][1]) for u in (4, 6))
    run = db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'build_recommendations'").fetchone()[0]
    assert run["mode"] == "incremental" and run["viewers"] == 2

    # nothing new: nothing rebuilt
    db.execute("UPDATE feed.interactions SET created_at = created_at - interval '1 hour'")
    assert build(db, only_changed=True) == 0
    assert db.execute("SELECT count(*) FROM feed.recommendations").fetchone()[0] == sum(len(r[1]) for r in after.values())


def test_incremental_run_without_a_previous_run_is_full(db):
    posts(db, 1, 2)
    log(db, 1, 1); log(db, 1, 2); log(db, 2, 1)
    assert build(db, only_changed=True) == 1
    assert db.execute("SELECT count(*) FROM feed.item_neighbors").fetchone()[0] == 2
    assert db.execute("SELECT last_result->>'mode' FROM feed.job_runs"
                      " WHERE job = 'build_recommendations'").fetchone()[0] == "full"


def test_readers_keep_the_old_recommendations_while_a_build_runs(db, db_dsn):
    posts(db, 1, 2, 3)
    log(db, 1, 1); log(db, 1, 2); log(db, 2, 1)
    build(db)
    log(db, 2, 1, "unlike", minutes_ago=1)
    log(db, 3, 2); log(db, 3, 3)
    with psycopg.connect(db_dsn) as builder, psycopg.connect(db_dsn, autocommit=True) as reader:
        reader.execute("SET lock_timeout = '2s'")
        builder.execute("SELECT feed.build_recommendations('30 days')")       # not committed yet
        assert reader.execute("SELECT user_id, post_id FROM feed.recommendations").fetchall() == [(2, 2)]
        assert reader.execute("SELECT count(*) FROM feed.item_neighbors").fetchone()[0] == 2
        # a feed write meanwhile is not blocked either
        reader.execute("SELECT feed.record_interaction(7, 3, 'like')")
        builder.commit()
    assert sorted(db.execute("SELECT user_id, post_id FROM feed.recommendations").fetchall()) == [(1, 3), (3, 1)]


def test_two_builds_run_one_after_the_other(db_dsn, db):
    posts(db, 1, 2)
    log(db, 1, 1); log(db, 1, 2); log(db, 2, 1)
    results, errors = [], []

    def run():
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                results.append(conn.execute("SELECT feed.build_recommendations()").fetchone()[0])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [1, 1, 1]
    assert db.execute("SELECT count(*) FROM feed.recommendations").fetchone()[0] == 1


@pytest.mark.parametrize("lookback", ["0 days", "-1 day", None])
def test_build_rejects_a_bad_lookback(db, lookback):
    with pytest.raises(psycopg.Error) as exc:
        build(db, lookback)
    assert exc.value.sqlstate == "22023"
    assert exc.value.diag.message_primary.startswith("p_lookback")
    with pytest.raises(psycopg.Error) as exc:
        db.execute("SELECT feed.build_recommendations('1 day', NULL)")
    assert exc.value.sqlstate == "22023"


def test_the_contract_form_defaults_to_30_days(db):
    posts(db, 1, 2)
    log(db, 1, 1); log(db, 1, 2); log(db, 2, 1)
    assert db.execute("SELECT feed.build_recommendations()").fetchone()[0] == 1
    assert db.execute("SELECT last_result->>'lookback' FROM feed.job_runs"
                      " WHERE job = 'build_recommendations'").fetchone()[0] == "30 days"


# ---------------------------------------------------------------------------
# _live_collaborative

def live(db, user, limit=10):
    return db.execute("SELECT post_id, score, because FROM feed._live_collaborative(%s, %s)", [user, limit]).fetchall()


@pytest.mark.parametrize("recency", ["0", "1"])
def test_live_collaborative_scores_recent_positives_through_the_neighbours(db, recency):
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'recommendation_recency_exponent'", [recency])
    posts(db, *range(1, 8))
    for user, items in {1: [1, 2, 3], 2: [1, 2, 4], 3: [2, 5], 4: [3, 6, 7]}.items():
        for post in items:
            log(db, user, post, minutes_ago=500)
    build(db)
    neighbours = {(p, q): s for p, q, s in db.execute("SELECT post_id, neighbor_id, score FROM feed.item_neighbors")}

    # viewer 9 has no precomputed recommendations: likes 1 and 2, viewed 4, hid 5
    db.execute("SELECT feed.record_interaction(9, 1, 'like')")
    db.execute("SELECT feed.record_interaction(9, 2, 'share')")
    db.execute("SELECT feed.record_interaction(9, 4, 'view')")
    db.execute("SELECT feed.record_interaction(9, 5, 'not_interested')")
    got = live(db, 9)
    # the latest positive (2, shared) weighs 1, the one before (1, liked) 2^-recommendation_recency_exponent
    weight = {2: 1.0, 1: 2 ** -float(settings(db)["recommendation_recency_exponent"])}
    scores = defaultdict(float)
    for (p, q), s in neighbours.items():
        if p in (1, 2) and q not in (1, 2, 4, 5):
            scores[q] += s * weight[p]
    want = sorted(scores, key=lambda q: (-scores[q], q))
    assert [r[0] for r in got] == want
    best = scores[want[0]]
    for post, score, because in got:
        assert score == pytest.approx(scores[post] / best)
        contributors = sorted((p for p in (1, 2) if (p, post) in neighbours),
                              key=lambda p: (-neighbours[(p, post)] * weight[p], p))
        assert because == contributors
    assert got[0][1] == pytest.approx(1.0)
    assert len(live(db, 9, 1)) == 1


def test_live_collaborative_uses_only_the_most_recent_positives(db):
    posts(db, *range(1, 6))
    for user, items in {1: [1, 3], 2: [2, 4]}.items():
        for post in items:
            log(db, user, post, minutes_ago=500)
    build(db)
    log(db, 9, 1, minutes_ago=30)
    log(db, 9, 2, minutes_ago=10)
    db.execute("UPDATE feed.settings SET value = '1' WHERE name = 'live_collaborative_history'")
    assert [r[0] for r in live(db, 9)] == [4]
    db.execute("UPDATE feed.settings SET value = '20' WHERE name = 'live_collaborative_history'")
    assert sorted(r[0] for r in live(db, 9)) == [3, 4]
    # an undone like is no longer a positive
    log(db, 9, 2, "unlike", minutes_ago=5)
    assert [r[0] for r in live(db, 9)] == [3]


def test_live_collaborative_edge_cases(db):
    assert live(db, 9) == []
    assert live(db, None) == []
    with pytest.raises(psycopg.Error) as exc:
        live(db, 9, 0)
    assert exc.value.sqlstate == "22023"
