"""Analytics = rollup + tail (docs/experiments.md, "Retention and cost"): over
random small worlds replayed in time order, with rollups (and the deletion of
rolled-up sessions) at random moments between servings and a final
run_maintenance, experiment_results, feed_metrics and _page_metrics equal a
direct computation from the whole log, done here in Python."""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WINDOW = timedelta(hours=24)
LIFETIME = timedelta(minutes=30)
POSITIVE = {"like", "comment", "share", "save", "praise", "trophy", "gift", "tip"}
SOURCES = ("following", "trending", "explore", "repeat")
AUTHOR = {p: 100 + p % 3 for p in range(1, 7)}

serve = st.fixed_dictionaries({
    "kind": st.just("serve"),
    "user": st.one_of(st.none(), st.integers(1, 4)),
    "variant": st.sampled_from(["a", "b", None]),
    "pages": st.lists(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(SOURCES)), min_size=1, max_size=3),
                      min_size=1, max_size=2),
})
interact = st.fixed_dictionaries({
    "kind": st.just("interact"), "user": st.integers(1, 4), "post": st.integers(1, 6),
    "action": st.sampled_from(["like", "save", "view", "unlike", "report"]),
})
maintain = st.fixed_dictionaries({"kind": st.just("maintain")})
steps = st.lists(st.tuples(st.integers(0, 40 * 60), st.one_of(serve, serve, interact, interact, maintain)),
                 min_size=1, max_size=25)


def wilson(k, n, z=1.959963984540054):
    if n == 0:
        return None, None
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def reset(db, truncate_state: bool):
    db.execute("TRUNCATE feed.feed_sessions, feed.feed_session_items, feed.interactions,"
               " feed.analytics_daily_posts, feed.analytics_daily_pages, feed.analytics_experiment_viewers,"
               " feed.analytics_daily_sources, feed.analytics_experiment_variants, feed.analytics_engaged_rows")
    db.execute("DELETE FROM feed.experiments")
    if truncate_state:
        # what `pgfeed seed --replace` does: the state row is gone, which means nothing is rolled up
        db.execute("TRUNCATE feed.analytics_rollup_state")
    else:
        db.execute("UPDATE feed.analytics_rollup_state SET rolled_up_before = '-infinity', engaged_through = '-infinity'")
    db.execute("""INSERT INTO feed.experiments (name, variants, status)
                  VALUES ('exp', '{"a": {"weight": 1}, "b": {"weight": 1}}', 'running')""")


def replay(db, plan, start):
    """Write the plan's events at their times; returns the served rows and interactions."""
    rows, interactions = [], []
    clock = start
    for minutes, event in plan:
        clock += timedelta(minutes=minutes)
        if event["kind"] == "serve":
            session = uuid.uuid4()
            user = event["user"]
            experiments = {"exp": event["variant"]} if user is not None and event["variant"] else {}
            served, last, shown = [], clock, set()
            for page_no, page in enumerate(event["pages"], 1):
                last = clock + timedelta(minutes=page_no - 1)
                fresh = {post: source for post, source in page if post not in shown}
                shown |= fresh.keys()
                for rank, (post, source) in enumerate(fresh.items(), 1):
                    served.append((session, user, experiments, page_no, rank, post, AUTHOR[post], source,
                                   source == "repeat", last))
            db.execute("INSERT INTO feed.feed_sessions (viewer_key, session_id, user_id, mode, profile, seed,"
                       " created_at, expires_at, experiments)"
                       " VALUES (coalesce(%s, 1), %s, %s, 'personalized', 'default', 1, %s, %s, %s)",
                       [user, session, user, clock, last + LIFETIME, json.dumps(experiments)])
            for r in served:
                db.execute("INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id,"
                           " author_id, score, source, is_repeat, reasons, served_at)"
                           " VALUES (coalesce(%s, 1), %s, %s, %s, %s, %s, 1, %s, %s, '{}', %s)",
                           [r[1], r[0], r[3], r[4], r[5], r[6], r[7], r[8], r[9]])
            rows += served
        elif event["kind"] == "interact":
            db.execute("INSERT INTO feed.interactions (user_id, post_id, action, created_at) VALUES (%s, %s, %s, %s)",
                       [event["user"], event["post"], event["action"], clock])
            interactions.append((event["user"], event["post"], event["action"], clock))
        else:
            # run_maintenance at this moment: roll up, then delete what was rolled up
            db.execute("SELECT feed._rollup_analytics(%s)", [clock])
            db.execute("DELETE FROM feed.feed_sessions s WHERE s.expires_at <"
                       " least(feed._analytics_deletable_before(), %s)", [clock])
            db.execute("DELETE FROM feed.analytics_engaged_rows e"
                       " WHERE NOT EXISTS (SELECT 1 FROM feed.feed_sessions s WHERE s.session_id = e.session_id)")
    return rows, interactions


def direct(rows, interactions):
    """experiment_results('exp'), feed_metrics and _page_metrics, from the whole log."""
    def engaged(r):
        _, user, _, _, _, post, _, _, _, served_at = r
        return user is not None and any(u == user and p == post and a in POSITIVE and served_at <= at <= served_at + WINDOW
                                        for u, p, a, at in interactions)

    flags = [engaged(r) for r in rows]
    variants = {"a": [set(), 0, 0], "b": [set(), 0, 0]}
    metrics = defaultdict(lambda: [0, 0, 0, set(), set()])
    pages = defaultdict(list)
    for r, hit in zip(rows, flags):
        session, user, experiments, page_no, _, post, author, source, repeat, served_at = r
        if "exp" in experiments:
            v = variants[experiments["exp"]]
            v[0].add(user)
            v[1] += 1
            v[2] += hit
        m = metrics[(served_at.date(), source)]
        m[0] += 1
        m[1] += hit
        m[2] += repeat
        m[3].add(post)
        m[4].add(author)
        pages[(session, page_no)].append(r)
    results = {}
    for name, (viewers, n, k) in variants.items():
        low, high = wilson(k, n)
        results[name] = (len(viewers), n, k, k / n if n else None, low, high)
    feed = {key: (n, k, k / n, rep / n, len(posts), len(authors))
            for key, (n, k, rep, posts, authors) in metrics.items()}
    per_day = defaultdict(lambda: [0, 0, 0.0, 0])
    for page in pages.values():
        day = min(r[9] for r in page).date()
        d = per_day[day]
        d[0] += 1
        d[1] += len(page)
        d[2] += sum(r[8] for r in page) / len(page)
        d[3] += len({r[6] for r in page})
    page_metrics = {day: (n, items / n, share / n, authors / n) for day, (n, items, share, authors) in per_day.items()}
    return results, feed, page_metrics


def approx_equal(got, expected):
    assert got.keys() == expected.keys(), (got, expected)
    for key in expected:
        for g, e in zip(got[key], expected[key], strict=True):
            if e is None or g is None:
                assert g == e, (key, got[key], expected[key])
            else:
                assert math.isclose(g, e, rel_tol=1e-9, abs_tol=1e-9), (key, got[key], expected[key])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, truncate_state=st.booleans(), final_maintenance=st.booleans())
def test_rollup_plus_tail_equals_the_log(db, plan, truncate_state, final_maintenance):
    db.execute("SET TIME ZONE 'UTC'")
    reset(db, truncate_state)
    now = db.execute("SELECT now()").fetchone()[0]
    total = sum(minutes for minutes, _ in plan)
    rows, interactions = replay(db, plan, now - timedelta(minutes=total + 5))
    if final_maintenance:
        db.execute("SELECT feed.run_maintenance()")
    results, feed, page_metrics = direct(rows, interactions)
    approx_equal({r[0]: tuple(r[1:]) for r in db.execute("SELECT * FROM feed.experiment_results('exp')")}, results)
    approx_equal({(r[0], r[1]): tuple(r[2:]) for r in db.execute("SELECT * FROM feed.feed_metrics('30 days')")},
                 feed)
    approx_equal({r[0]: tuple(r[1:]) for r in db.execute("SELECT * FROM feed._page_metrics('30 days')")},
                 page_metrics)
    # a rollup of nothing new changes nothing
    db.execute("SELECT feed._rollup_analytics()")
    approx_equal({r[0]: tuple(r[1:]) for r in db.execute("SELECT * FROM feed.experiment_results('exp')")}, results)


def test_a_missing_state_row_means_nothing_is_rolled_up(db):
    """`pgfeed seed --replace` truncates every data table, the rollup state's too:
    results are still read from the log, and the next rollup puts the row back
    and counts each served row once."""
    db.execute("TRUNCATE feed.analytics_rollup_state")
    session = uuid.uuid4()
    db.execute("INSERT INTO feed.experiments (name, variants, status) VALUES ('exp', '{\"a\": {\"weight\": 1}}',"
               " 'running')")
    db.execute("INSERT INTO feed.feed_sessions (viewer_key, session_id, user_id, mode, profile, seed, expires_at,"
               " experiments) VALUES (1, %s, 1, 'personalized', 'default', 1, now() - interval '3 days',"
               " '{\"exp\": \"a\"}')", [session])
    db.execute("INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id, author_id, score,"
               " source, is_repeat, reasons, served_at) VALUES (1, %s, 1, 1, 1, 101, 1, 'trending', false, '{}',"
               " now() - interval '3 days 1 hour')", [session])
    db.execute("INSERT INTO feed.interactions (user_id, post_id, action, created_at)"
               " VALUES (1, 1, 'like', now() - interval '3 days')")
    expected = [("a", 1, 1, 1, 1.0)]
    assert [r[:5] for r in db.execute("SELECT * FROM feed.experiment_results('exp')")] == expected
    for _ in range(2):
        db.execute("SELECT feed.run_maintenance()")
        assert db.execute("SELECT count(*) FROM feed.analytics_rollup_state").fetchone()[0] == 1
        assert [r[:5] for r in db.execute("SELECT * FROM feed.experiment_results('exp')")] == expected
    assert db.execute("SELECT count(*) FROM feed.feed_sessions").fetchone()[0] == 0


def test_engagement_after_the_fold_counts_once(db):
    """A session is folded one session_lifetime after it expires, before its
    attribution window closes: a like that comes later counts, read as late
    engagement and then from the rollup, and a second like on the same row
    does not count again; the session is deleted only after its window."""
    db.execute("INSERT INTO feed.experiments (name, variants, status) VALUES ('exp', '{\"a\": {\"weight\": 1}}',"
               " 'running')")
    session = uuid.uuid4()
    db.execute("INSERT INTO feed.feed_sessions (viewer_key, session_id, user_id, mode, profile, seed, expires_at,"
               " experiments) VALUES (1, %s, 1, 'personalized', 'default', 1, now() - interval '2 hours',"
               " '{\"exp\": \"a\"}')", [session])
    db.execute("INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id, author_id, score,"
               " source, is_repeat, reasons, served_at) VALUES (1, %s, 1, 1, 1, 101, 1, 'trending', false, '{}',"
               " now() - interval '3 hours')", [session])

    def engagements():
        results = [r[:4] for r in db.execute("SELECT * FROM feed.experiment_results('exp')")]
        metrics = [r[2:4] for r in db.execute("SELECT * FROM feed.feed_metrics('2 days')")]
        return results, metrics

    rolled = db.execute("SELECT feed.run_maintenance()").fetchone()[0]
    assert rolled["sessions_expired"] == 0
    assert db.execute("SELECT count(*) FROM feed.analytics_daily_posts").fetchone()[0] == 1
    assert engagements() == ([("a", 1, 1, 0)], [(1, 0)])
    db.execute("INSERT INTO feed.interactions (user_id, post_id, action) VALUES (1, 1, 'like')")
    assert engagements() == ([("a", 1, 1, 1)], [(1, 1)])  # read as late engagement
    for _ in range(2):
        db.execute("SELECT feed.run_maintenance()")
        assert engagements() == ([("a", 1, 1, 1)], [(1, 1)])  # from the rollup
        db.execute("INSERT INTO feed.interactions (user_id, post_id, action) VALUES (1, 1, 'save')")
        assert engagements() == ([("a", 1, 1, 1)], [(1, 1)])
    assert db.execute("SELECT count(*) FROM feed.analytics_engaged_rows").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM feed.feed_sessions").fetchone()[0] == 1


ANALYTICS_READS = ["feed.experiment_results(text)", "feed.feed_metrics(interval)", "feed._page_metrics(interval)",
                   "feed._rollup_analytics(timestamptz)"]


@pytest.mark.parametrize("function", ANALYTICS_READS)
def test_analytics_functions_always_plan_for_their_arguments(db, function):
    """After five calls on one connection PL/pgSQL switches to a generic plan; for the
    analytics reads that plan took 25 s instead of 1 s (at
    10M interactions, docs/experiments.md). They pin custom plans, for what they call too."""
    config = db.execute("SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure", [function]).fetchone()[0]
    assert "plan_cache_mode=force_custom_plan" in config

