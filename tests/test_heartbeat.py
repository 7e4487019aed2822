"""The heartbeat and run_maintenance: formula everywhere, final scores once, concurrency, chores."""

from __future__ import annotations

import threading

import psycopg
import pytest

from .helpers import add_post, trending


def scores(db):
    return {r[0]: r[1:] for r in db.execute(
        "SELECT post_id, like_count, comment_count, share_count, gift_amount, tip_amount, created_at,"
        " trending_score FROM feed.posts").fetchall()}


def test_heartbeat_equals_the_formula_for_every_post_in_the_window(db):
    ages = ["10 minutes", "3 hours", "1 day", "3 days", "6 days 23 hours", "8 days", "40 days"]
    for i, age in enumerate(ages, start=1):
        add_post(db, i, age=age, like_count=i * 3, comment_count=i, share_count=i % 2, gift_amount=i / 4,
                 tip_amount=0.5)
    db.execute("UPDATE feed.posts SET trending_score = -1")  # stale values the heartbeat must replace
    with db.transaction():
        touched = db.execute("SELECT feed.refresh_trending_scores('7 days')").fetchone()[0]
        now = db.execute("SELECT now()").fetchone()[0]
        rows = scores(db)
    assert touched == 5
    for post_id, (likes, comments, shares, gift, tip, created, score) in rows.items():
        if post_id <= 5:
            assert score == pytest.approx(trending(likes, comments, shares, gift, tip, created, now), rel=1e-12)
        else:
            assert score == -1, "posts long out of the window are not rescored"


def test_posts_leaving_the_window_get_their_final_score_once(db):
    add_post(db, 1, age="7 days 6 hours", like_count=10)
    add_post(db, 2, age="2 days", like_count=10)
    db.execute("INSERT INTO feed.job_runs (job, last_run_at) VALUES ('heartbeat', now() - interval '12 hours')")
    db.execute("UPDATE feed.posts SET trending_score = -1")
    assert db.execute("SELECT feed.refresh_trending_scores('7 days')").fetchone()[0] == 2
    assert db.execute("SELECT trending_score > 0 FROM feed.posts WHERE post_id = 1").fetchone()[0]
    db.execute("UPDATE feed.posts SET trending_score = -1 WHERE post_id = 1")
    # post 2, rescored a moment ago, has barely aged: nothing is written
    assert db.execute("SELECT feed.refresh_trending_scores('7 days')").fetchone()[0] == 0
    assert db.execute("SELECT trending_score FROM feed.posts WHERE post_id = 1").fetchone()[0] == -1


def test_heartbeat_records_its_run(db):
    add_post(db, 1)
    add_post(db, 2)
    db.execute("UPDATE feed.posts SET trending_score = 0 WHERE post_id = 1")
    db.execute("SELECT feed.refresh_trending_scores()")
    result = db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'heartbeat'").fetchone()[0]
    assert (result["rescored"], result["unchanged"], result["finalized"]) == (1, 1, 0)


@pytest.mark.parametrize("min_change", [0.01, 0.002, 0.0])
def test_heartbeat_skips_posts_age_has_barely_moved(db, min_change):
    """Scores written ten minutes ago: the heartbeat rewrites exactly the posts whose
    score moved by more than heartbeat_min_change, and every score in the window ends
    within that fraction of the formula."""
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'heartbeat_min_change'", [str(min_change)])
    ages = ["5 minutes", "30 minutes", "2 hours", "9 hours", "20 hours", "1 day 10 hours", "2 days", "3 days",
            "4 days 12 hours", "6 days 20 hours"]
    for i, age in enumerate(ages, start=1):
        add_post(db, i, age=age, like_count=i * 5, comment_count=i % 3, share_count=i % 2)
    with db.transaction():
        db.execute("UPDATE feed.posts SET trending_score = feed.trending_score("
                   " like_count, comment_count, share_count, gift_amount, tip_amount, created_at,"
                   " now() - interval '10 minutes')")
        stale = {r[0]: r[1] for r in db.execute("SELECT post_id, trending_score FROM feed.posts").fetchall()}
        written = db.execute("SELECT feed.refresh_trending_scores('7 days')").fetchone()[0]
        now = db.execute("SELECT now()").fetchone()[0]
        rows = scores(db)
    moved = set()
    for post_id, (likes, comments, shares, gift, tip, created, score) in rows.items():
        exact = trending(likes, comments, shares, gift, tip, created, now)
        if abs(exact - stale[post_id]) > min_change * exact:
            moved.add(post_id)
            assert score == pytest.approx(exact, rel=1e-12), post_id
        else:
            assert score == stale[post_id], post_id
        assert abs(score - exact) <= min_change * exact * (1 + 1e-9), post_id
    assert written == len(moved)
    assert 0 < len(moved) and (min_change == 0) == (len(moved) == len(ages))


def test_small_batches_cover_the_whole_window(db):
    db.execute("UPDATE feed.settings SET value = '3' WHERE name = 'heartbeat_batch_size'")
    for i in range(1, 11):
        add_post(db, i, age=f"{i} hours")
    db.execute("UPDATE feed.posts SET trending_score = 0")
    assert db.execute("SELECT feed.refresh_trending_scores()").fetchone()[0] == 10
    assert db.execute("SELECT count(*) FROM feed.posts WHERE trending_score = 0").fetchone()[0] == 0


def test_concurrent_likes_while_the_heartbeat_runs_end_with_exact_counts(db, db_dsn):
    db.execute("UPDATE feed.settings SET value = '2' WHERE name = 'heartbeat_batch_size'")
    posts = list(range(1, 9))
    for post in posts:
        add_post(db, post, age="10 hours")
    start = db.execute("SELECT now()").fetchone()[0]
    likes_per_worker, workers = 40, 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(workers + 1)

    def liker(worker: int):
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                barrier.wait()
                for i in range(likes_per_worker):
                    conn.execute("SELECT feed.record_interaction(%s, %s, 'like')", [worker * 1000 + i,
                                                                                    posts[i % len(posts)]])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def heartbeat():
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                barrier.wait()
                for _ in range(15):
                    conn.execute("SELECT feed.refresh_trending_scores()")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=liker, args=(w,)) for w in range(workers)] + [threading.Thread(target=heartbeat)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    end = db.execute("SELECT now()").fetchone()[0]
    total = likes_per_worker * workers
    rows = scores(db)
    assert sum(r[0] for r in rows.values()) == total
    for likes, comments, shares, gift, tip, created, score in rows.values():
        assert likes == total // len(posts)
        # the score was computed from the final counters at some moment of the run:
        # between the formula at the end and at the start (a lost like would fall below)
        assert trending(likes, 0, 0, 0, 0, created, end) * (1 - 1e-9) <= score
        assert score <= trending(likes, 0, 0, 0, 0, created, start) * (1 + 1e-9)


def test_run_maintenance_does_every_chore(db):
    add_post(db, 1, author_id=50, view_count=100, like_count=10, report_count=1, watch_count=10,
             watch_ratio_sum=6.0)
    add_post(db, 2, author_id=51, age="60 days")
    db.execute("INSERT INTO feed.impressions (user_id, post_id, seen_at) VALUES"
               " (7, 1, now() - interval '31 days'), (7, 2, now() - interval '2 days')")
    db.execute("INSERT INTO feed.seen_posts VALUES (7, 1, now() - interval '40 days', now() - interval '31 days', 1),"
               " (7, 2, now() - interval '2 days', now() - interval '2 days', 1)")
    db.execute("INSERT INTO feed.feed_sessions (viewer_key, session_id, mode, profile, seed, expires_at) VALUES"
               " (1, gen_random_uuid(), 'trending', 'default', 1, now() - interval '2 days'),"
               " (2, gen_random_uuid(), 'trending', 'default', 2, now() + interval '1 minute')")
    db.execute("INSERT INTO feed.recommendations (user_id, post_id, score, algorithm, expires_at) VALUES"
               " (7, 1, 1, 'itemknn', now() - interval '1 minute'), (7, 2, 1, 'itemknn', now() + interval '1 hour')")
    db.execute("UPDATE feed.posts SET trending_score = 0 WHERE post_id = 1")  # stale: the heartbeat rewrites it
    result = db.execute("SELECT feed.run_maintenance()").fetchone()[0]
    assert result == {"trending_rescored": 1, "impressions_pruned": 1, "seen_pruned": 1, "creators_refreshed": 1,
                      "sessions_expired": 1, "recommendations_expired": 1}
    assert db.execute("SELECT count(*) FROM feed.feed_sessions").fetchone()[0] == 1
    assert db.execute("SELECT post_id FROM feed.recommendations").fetchall() == [(2,)]
    assert db.execute("SELECT post_id FROM feed.impressions").fetchall() == [(2,)]
    assert db.execute("SELECT post_id FROM feed.seen_posts").fetchall() == [(2,)]
    quality = db.execute("SELECT watch_ratio, like_rate, report_rate, quality FROM feed.creator_quality"
                         " WHERE author_id = 50").fetchone()
    watch, like, report = (6.0 + 2.5) / 15, 11 / 120, 1 / 120
    assert quality == pytest.approx((watch, like, report,
                                     0.5 * watch + 0.3 * min(1, 5 * like) + 0.2 * (1 - min(1, 20 * report))))
    assert db.execute("SELECT count(*) FROM feed.creator_quality WHERE author_id = 51").fetchone()[0] == 0
    assert db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'maintenance'").fetchone()[0] == result


def test_maintenance_prunes_in_bounded_batches(db):
    db.execute("UPDATE feed.settings SET value = '2' WHERE name = 'maintenance_batch_size'")
    add_post(db, 1)
    db.execute("INSERT INTO feed.impressions (user_id, post_id, seen_at, session_id)"
               " SELECT 7, 1, now() - interval '60 days', g::text FROM generate_series(1, 5) g")
    assert db.execute("SELECT feed.run_maintenance()->>'impressions_pruned'").fetchone()[0] == "2"
    assert db.execute("SELECT count(*) FROM feed.impressions").fetchone()[0] == 3
