"""Counters that equal the log (issue 11, contract §3.2 v2 and §3.3).

like, praise, trophy and save are per-user states; for one user and post the
latest call wins, by clock_timestamp() then interaction id, never by when its
transaction began or committed. feed.rebuild_counters() derives every counter
from the log; after any interleaving of real transactions it changes nothing."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import add_post

NOTHING_CHANGED = {"posts": 0, "user_post_state": 0, "seen_posts": 0, "hidden_posts": 0,
                   "user_author_affinity": 0, "user_post_type_affinity": 0, "user_category_affinity": 0,
                   "user_tag_affinity": 0,
                   "user_signals": 0, "user_taste": 0}


def like_count(db, post=1) -> int:
    return db.execute("SELECT like_count FROM feed.posts WHERE post_id = %s", [post]).fetchone()[0]


def rebuild(db) -> dict:
    return db.execute("SELECT feed.rebuild_counters()").fetchone()[0]


def call(conn, user, action, post=1):
    conn.execute("SELECT feed.record_interaction(%s, %s, %s)", [user, post, action])


def waiting_for_a_lock(db, conn) -> bool:
    return db.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                      [conn.info.backend_pid]).fetchone() == (True,)


def call_unless_blocked(db, conn, user, action, post, holder) -> bool:
    """Make the call on `conn` in a thread. If it waits for a lock (the post row
    or the viewer held by `holder`'s open transaction), commit `holder` and let
    the call finish. Returns whether `holder` was committed. No timing: the
    server says when the call waits."""
    failure = []

    def run():
        try:
            call(conn, user, action, post)
        except Exception as exc:  # re-raised in the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    committed = False
    while worker.is_alive():
        if not committed and waiting_for_a_lock(db, conn):
            holder.commit()
            committed = True
        worker.join(0.005)
    if failure:
        raise failure[0]
    return committed


@pytest.fixture
def other(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def session_a(db_dsn):
    with psycopg.connect(db_dsn) as conn:  # not autocommit: a transaction A controls
        yield conn


def test_the_race_of_the_issue_unlike_by_another_user_then_like(db, session_a, other):
    """A: BEGIN; SELECT now(). B: user 2 unlikes. A: user 1 likes; COMMIT."""
    add_post(db, 1)
    session_a.execute("SELECT now()")
    call(other, 2, "unlike")
    call(session_a, 1, "like")
    session_a.commit()
    assert like_count(db) == 1
    assert rebuild(db) == NOTHING_CHANGED
    assert like_count(db) == 1


def test_the_race_the_other_way_a_later_call_wins_though_its_transaction_began_first(db, session_a, other):
    """A: BEGIN; SELECT now(). B: user 1 likes. A: user 1 unlikes; COMMIT. The
    unlike was called last, so it wins, although its transaction began first."""
    add_post(db, 1)
    session_a.execute("SELECT now()")
    call(other, 1, "like")
    call(session_a, 1, "unlike")
    session_a.commit()
    assert like_count(db) == 0
    assert rebuild(db) == NOTHING_CHANGED
    assert like_count(db) == 0


def test_the_race_like_by_a_then_unlike_by_b_committing_first(db, session_a, other):
    """A: BEGIN; SELECT now(). A: user 1 likes (uncommitted). B: user 2 unlikes,
    a post it never liked: that moves no counter, so B neither waits for A's
    post row nor takes a like away; B commits first. Commit order must not matter."""
    add_post(db, 1)
    session_a.execute("SELECT now()")
    call(session_a, 1, "like")
    assert not call_unless_blocked(db, other, 2, "unlike", 1, session_a)
    session_a.commit()
    call(other, 3, "like")
    assert like_count(db) == 2
    assert rebuild(db) == NOTHING_CHANGED


@pytest.mark.parametrize("first,second,expected", [("like", "unlike", 0), ("unlike", "like", 1)])
def test_one_users_concurrent_calls_the_later_call_wins_whoever_commits_last(
        db, db_dsn, session_a, first, second, expected):
    """A calls first and holds its transaction open; B's later call for the same
    user and post waits for A's row lock, then wins because it was called later."""
    add_post(db, 1)
    call(db, 1, "like")
    call(session_a, 1, first)
    done = threading.Event()

    def later_call():
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            call(conn, 1, second)
        done.set()

    worker = threading.Thread(target=later_call)
    worker.start()
    # B blocks on A's lock of the state row; wait until the server says so (no timing)
    while not db.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
                         " AND wait_event_type = 'Lock' AND query LIKE '%%record_interaction%%')").fetchone()[0]:
        assert not done.is_set(), "the later call should wait for the earlier one's lock"
        time.sleep(0.01)
    session_a.commit()
    worker.join()
    assert like_count(db) == expected
    assert rebuild(db) == NOTHING_CHANGED


def test_rebuild_counters_reports_and_repairs_drift(db):
    for post in (1, 2):
        add_post(db, post, author_id=50)
    for user, post, action in [(7, 1, "like"), (7, 1, "like"), (8, 1, "like"), (8, 2, "praise"), (7, 2, "view")]:
        call(db, user, action, post)
    assert rebuild(db) == NOTHING_CHANGED
    db.execute("UPDATE feed.posts SET like_count = 9 WHERE post_id = 1")
    db.execute("DELETE FROM feed.user_post_state WHERE user_id = 8 AND post_id = 2")
    db.execute("UPDATE feed.user_author_affinity SET view_count = 0 WHERE user_id = 7")
    result = rebuild(db)
    assert result == dict(NOTHING_CHANGED, posts=1, user_post_state=1, user_author_affinity=1)
    assert like_count(db) == 2
    assert rebuild(db) == NOTHING_CHANGED
    assert db.execute("SELECT count(*) FROM feed.job_runs WHERE job = 'rebuild'").fetchone()[0] == 1


# ---------------------------------------------------------------------------
# the property: two connections, one holding a transaction open across the other's
# calls, any interleaving and commit point; the live counters equal the rebuild

STATE_ACTIONS = ["like", "unlike", "praise", "trophy", "save", "view", "comment"]
step = st.tuples(st.sampled_from(["A", "B", "commit"]), st.integers(1, 3), st.integers(1, 2),
                 st.sampled_from(STATE_ACTIONS))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=25))
def test_live_counters_equal_the_rebuild_under_any_interleaving(db, db_dsn, steps):
    db.execute("TRUNCATE feed.posts, feed.interactions, feed.impressions, feed.job_runs, feed.user_post_state,"
               " feed.seen_posts, feed.hidden_posts, feed.user_author_affinity, feed.user_post_type_affinity,"
               " feed.user_category_affinity, feed.user_signals, feed.user_taste RESTART IDENTITY")
    add_post(db, 1, author_id=50)
    add_post(db, 2, author_id=51)
    # A holds one transaction open across B's calls; a B call that waits for a
    # row A holds (the post, or the viewer) makes A commit, as it would in life
    with psycopg.connect(db_dsn) as a, psycopg.connect(db_dsn, autocommit=True) as b:
        a.execute("SELECT now()")
        a_open = True
        for who, user, post, action in steps:
            if who == "commit":
                a.commit()
                a_open = False
            elif who == "A":
                call(a, user, action, post)
                a_open = True
            elif a_open:
                if call_unless_blocked(db, b, user, action, post, a):
                    a_open = False
            else:
                call(b, user, action, post)
        a.commit()
    live = db.execute("SELECT post_id, like_count, praise_count, trophy_count, save_count FROM feed.posts"
                      " ORDER BY post_id").fetchall()
    assert rebuild(db) == dict(NOTHING_CHANGED, user_taste=0)
    assert db.execute("SELECT post_id, like_count, praise_count, trophy_count, save_count FROM feed.posts"
                      " ORDER BY post_id").fetchall() == live


def test_the_cli_verb_reports_the_changes(db, db_dsn):
    import json
    import subprocess
    import sys

    add_post(db, 1)
    call(db, 7, "like")
    db.execute("UPDATE feed.posts SET like_count = 5 WHERE post_id = 1")
    result = subprocess.run([sys.executable, "-m", "pgfeed.cli", "rebuild-counters", "--json", "--dsn", db_dsn],
                            capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert report["posts"] == 1 and report["user_post_state"] == 0
    assert like_count(db) == 1
    again = subprocess.run([sys.executable, "-m", "pgfeed.cli", "rebuild-counters", "--dsn", db_dsn],
                           capture_output=True, text=True, check=True)
    assert again.stdout.startswith("rebuild-counters: posts=0 ")
