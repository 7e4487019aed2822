"""Experiments and analytics (contract §8, docs/experiments.md): assignment as a
property over many users, the validation trigger, the session hook, and a
hand-made log with a known answer for experiment_results and feed_metrics."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

USERS = 20000


def add_experiment(db, name, variants, status="draft", salt=None):
    db.execute("INSERT INTO feed.experiments (name, variants, status, salt) VALUES (%s, %s, %s, %s)",
               [name, json.dumps(variants), status, salt])


def counts(db, name, users=USERS) -> dict[str, int]:
    return dict(db.execute("SELECT feed.assign_variant(u, %s), count(*) FROM generate_series(1, %s) u GROUP BY 1",
                           [name, users]).fetchall())


# ---------------------------------------------------------------------------
# assignment

@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weights=st.lists(st.integers(1, 100), min_size=1, max_size=4), salt=st.text(st.characters(blacklist_characters="\x00"), min_size=0, max_size=12))
def test_assignment_is_deterministic_and_proportional(db, weights, salt):
    db.execute("DELETE FROM feed.experiments")
    variants = {f"v{i}": {"weight": w} for i, w in enumerate(weights)}
    add_experiment(db, "prop", variants, salt=salt)
    first = counts(db, "prop")
    assert counts(db, "prop") == first, "the same users get the same variants"
    total = sum(weights)
    for i, w in enumerate(weights):
        p = w / total
        expected = USERS * p
        sigma = math.sqrt(USERS * p * (1 - p)) or 1
        # 5 standard deviations: a false alarm once in ~3 million checks
        assert abs(first.get(f"v{i}", 0) - expected) <= 5 * sigma, (variants, first)


def test_assignment_is_independent_across_salts(db):
    add_experiment(db, "one", {"a": {"weight": 1}, "b": {"weight": 1}})
    add_experiment(db, "two", {"a": {"weight": 1}, "b": {"weight": 1}})
    cells = dict(((a, b), n) for a, b, n in db.execute(
        "SELECT feed.assign_variant(u, 'one'), feed.assign_variant(u, 'two'), count(*)"
        " FROM generate_series(1, %s) u GROUP BY 1, 2", [USERS]).fetchall())
    assert len(cells) == 4
    # chi-square of the 2x2 table against independence, 1 degree of freedom:
    # 20 is far beyond the 99.99th percentile (15.1)
    rows = {a: sum(n for (x, _), n in cells.items() if x == a) for a in "ab"}
    cols = {b: sum(n for (_, y), n in cells.items() if y == b) for b in "ab"}
    chi2 = sum((cells[(a, b)] - rows[a] * cols[b] / USERS) ** 2 / (rows[a] * cols[b] / USERS)
               for a in "ab" for b in "ab")
    assert chi2 < 20, cells
    # the same salt gives the same split
    db.execute("UPDATE feed.experiments SET salt = 'one' WHERE name = 'two'")
    assert db.execute("SELECT count(*) FROM generate_series(1, 1000) u"
                      " WHERE feed.assign_variant(u, 'one') <> feed.assign_variant(u, 'two')").fetchone()[0] == 0


def test_assignment_edges(db):
    add_experiment(db, "e", {"only": {"weight": 5}})
    assert db.execute("SELECT feed.assign_variant(NULL, 'e')").fetchone()[0] is None
    assert db.execute("SELECT feed.assign_variant(-7, 'e')").fetchone()[0] == "only"
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT feed.assign_variant(1, 'nope')")


# ---------------------------------------------------------------------------
# the validation trigger

@pytest.mark.parametrize("variants", [
    {}, [], {"a": 1}, {"a": {}}, {"a": {"weight": 0}}, {"a": {"weight": -1}}, {"a": {"weight": "1"}},
    {"a": {"weight": 1, "profile": "no_such_profile"}}, {"a": {"weight": 1, "colour": "red"}},
    {"a": {"weight": 1, "settings": {"no_such_setting": 1}}}, {"a": {"weight": 1, "settings": []}},
    {"a": {"weight": 1, "settings": {"epsilon": "lots"}}}, {"a": {"weight": 1, "settings": {"cooldown": "-3 days"}}},
    {"a": {"weight": 1, "settings": {"max_repeats_per_page": 1.5}}},
    {"a": {"weight": 1, "settings": {"epsilon": None}}}, {"": {"weight": 1}},
])
def test_bad_variants_are_refused(db, variants):
    before = db.execute("SELECT array_agg((name, value, updated_at)::text ORDER BY name) FROM feed.settings").fetchone()
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        add_experiment(db, "bad", variants)
    after = db.execute("SELECT array_agg((name, value, updated_at)::text ORDER BY name) FROM feed.settings").fetchone()
    assert before == after
    assert db.execute("SELECT count(*) FROM feed.experiments").fetchone()[0] == 0


def test_setting_errors_name_the_variant_and_setting(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"variants\.fast\.settings\.epsilon"):
        add_experiment(db, "bad", {"fast": {"weight": 1, "settings": {"epsilon": "lots"}}})


def test_valid_overrides_leave_settings_untouched(db):
    before = db.execute("SELECT array_agg((name, value, updated_at)::text ORDER BY name) FROM feed.settings").fetchone()
    add_experiment(db, "ok", {"a": {"weight": 1, "profile": "hybrid",
                                    "settings": {"epsilon": 0.3, "cooldown": "7 days", "max_repeats_per_page": 1}},
                              "control": {"weight": 1}})
    after = db.execute("SELECT array_agg((name, value, updated_at)::text ORDER BY name) FROM feed.settings").fetchone()
    assert before == after


def test_plain_insert_with_status_running_starts_one(db):
    db.execute("""INSERT INTO feed.experiments (name, variants, status)
                  VALUES ('plain', '{"a": {"weight": 1}, "b": {"weight": 1}}', 'running')""")
    row = db.execute("SELECT status, started_at IS NOT NULL, stopped_at, salt FROM feed.experiments").fetchone()
    assert row == ("running", True, None, None)
    db.execute("UPDATE feed.experiments SET status = 'stopped'")
    assert db.execute("SELECT stopped_at IS NOT NULL FROM feed.experiments").fetchone()[0]
    db.execute("UPDATE feed.experiments SET status = 'running'")
    assert db.execute("SELECT started_at IS NOT NULL AND stopped_at IS NULL FROM feed.experiments").fetchone()[0]


def test_a_running_experiment_keeps_its_assignments(db):
    add_experiment(db, "run", {"a": {"weight": 1}, "b": {"weight": 1}}, status="running")
    for change in ["variants = '{\"a\": {\"weight\": 2}, \"b\": {\"weight\": 1}}'", "salt = 'x'", "name = 'other'"]:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            db.execute(f"UPDATE feed.experiments SET {change}")
    db.execute("UPDATE feed.experiments SET description = 'fine'")
    db.execute("UPDATE feed.experiments SET status = 'stopped'")
    db.execute("UPDATE feed.experiments SET salt = 'x'")


def test_overlapping_experiments_are_refused(db):
    add_experiment(db, "profiles", {"a": {"weight": 1, "profile": "hybrid"}, "b": {"weight": 1}}, status="running")
    add_experiment(db, "eps", {"a": {"weight": 1, "settings": {"epsilon": 0.2}}, "b": {"weight": 1}},
                   status="running")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="profiles"):
        add_experiment(db, "p2", {"x": {"weight": 1, "profile": "default"}}, status="running")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="eps"):
        add_experiment(db, "e2", {"x": {"weight": 1, "settings": {"cooldown": "1 day", "epsilon": 0.5}}},
                       status="running")
    # a draft may overlap; starting it may not
    add_experiment(db, "e3", {"x": {"weight": 1, "settings": {"epsilon": 0.5}}})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="eps"):
        db.execute("UPDATE feed.experiments SET status = 'running' WHERE name = 'e3'")
    # disjoint overrides run side by side; a stopped experiment overlaps nothing
    add_experiment(db, "cool", {"x": {"weight": 1, "settings": {"cooldown": "1 day"}}}, status="running")
    db.execute("UPDATE feed.experiments SET status = 'stopped' WHERE name = 'eps'")
    db.execute("UPDATE feed.experiments SET status = 'running' WHERE name = 'e3'")
    assert db.execute("SELECT array_agg(name ORDER BY name) FROM feed.experiments WHERE status = 'running'"
                      ).fetchone()[0] == ["cool", "e3", "profiles"]


# ---------------------------------------------------------------------------
# the session hook and the setting overrides

def test_session_experiments(db):
    add_experiment(db, "prof", {"hy": {"weight": 1, "profile": "hybrid"}, "control": {"weight": 1}}, status="running")
    add_experiment(db, "eps", {"hi": {"weight": 1, "settings": {"epsilon": 0.3}},
                               "lo": {"weight": 1, "settings": {"epsilon": "0.05", "cooldown": "2 days"}}},
                   status="running")
    add_experiment(db, "draft", {"x": {"weight": 1, "settings": {"gravity": 2}}})
    seen = set()
    for user in range(1, 60):
        got = db.execute("SELECT feed._session_experiments(%s, '{}')", [user]).fetchone()[0]
        prof, eps = (db.execute("SELECT feed.assign_variant(%s, %s)", [user, n]).fetchone()[0] for n in ("prof", "eps"))
        assert got["experiments"] == {"prof": prof, "eps": eps}
        assert got["profile"] == ("hybrid" if prof == "hy" else None)
        assert got["settings"] == ({"epsilon": 0.3} if eps == "hi" else {"epsilon": "0.05", "cooldown": "2 days"})
        assert db.execute("SELECT feed._variant_settings(%s)", [json.dumps(got["experiments"])]).fetchone()[0] \
            == got["settings"]
        seen.add((prof, eps))
        # an explicit profile wins: the profile experiment does not apply at all
        named = db.execute("""SELECT feed._session_experiments(%s, '{"profile": "default"}')""", [user]).fetchone()[0]
        assert named == {"experiments": {"eps": eps}, "profile": None, "settings": got["settings"]}
    assert len(seen) == 4
    assert db.execute("SELECT feed._session_experiments(NULL, '{}')").fetchone()[0] == {
        "experiments": {}, "profile": None, "settings": {}}


def test_setting_override_is_transaction_local(db_dsn):
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT feed._setting_override('epsilon')").fetchone()[0] is None
        conn.execute("SELECT set_config('pgfeed.setting_overrides', %s, true)",
                     [json.dumps({"epsilon": 0.3, "cooldown": "2 days"})])
        assert conn.execute("SELECT feed._setting_override('epsilon'), feed._setting_override('cooldown'),"
                            " feed._setting_override('gravity')").fetchone() == ("0.3", "2 days", None)
        conn.commit()
        assert conn.execute("SELECT feed._setting_override('epsilon')").fetchone()[0] is None


# ---------------------------------------------------------------------------
# attribution: a hand-made log with a known answer

D0 = (datetime.now(timezone.utc) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
AUTHOR = {p: 100 + p % 3 for p in range(1, 7)}


def hand_made_log(db) -> dict[str, uuid.UUID]:
    add_experiment(db, "exp", {"a": {"weight": 1}, "b": {"weight": 1}}, status="running")
    h = timedelta(hours=1)
    sessions = {
        # name: (user, experiments, [(page, post, source, is_repeat, served_at)])
        "s1": (1, {"exp": "a"}, [(1, 1, "following", False, D0 + 10 * h), (1, 2, "trending", False, D0 + 10 * h),
                                 (1, 3, "repeat", True, D0 + 10 * h)]),
        "s2": (2, {"exp": "b"}, [(1, 1, "following", False, D0 + 11 * h), (1, 4, "trending", False, D0 + 11 * h),
                                 (2, 5, "following", False, D0 + 25 * h)]),
        "s3": (3, {"exp": "a"}, [(1, 2, "trending", False, D0 + 26 * h)]),
        "s4": (None, {}, [(1, 1, "trending", False, D0 + 27 * h)]),
    }
    ids = {}
    for name, (user, experiments, items) in sessions.items():
        ids[name] = uuid.uuid4()
        db.execute("INSERT INTO feed.feed_sessions (viewer_key, session_id, user_id, mode, profile, seed, expires_at,"
                   " experiments) VALUES (coalesce(%s, 1), %s, %s, 'personalized', 'default', 1,"
                   " now() + interval '10 minutes', %s)", [user, ids[name], user, json.dumps(experiments)])
        for rank, (page, post, source, repeat, served_at) in enumerate(items, 1):
            db.execute("INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id,"
                       " author_id, score, source, is_repeat, reasons, served_at)"
                       " VALUES (coalesce(%s, 1), %s, %s, %s, %s, %s, 1, %s, %s, '{}', %s)",
                       [user, ids[name], page, rank, post, AUTHOR[post], source, repeat, served_at])
    m = timedelta(minutes=1)
    for user, post, action, at in [
        (1, 1, "like", D0 + 12 * h),               # engaged
        (1, 2, "view", D0 + 11 * h),               # a view is not engagement
        (1, 3, "like", D0 + 9 * h),                # before it was served
        (2, 1, "comment", D0 + 35 * h - m),        # engaged, just inside 24 h
        (2, 1, "like", D0 + 12 * h),               # the same served row counts once
        (2, 4, "share", D0 + 36 * h),              # too late
        (3, 2, "save", D0 + 26 * h + m),           # engaged
        (1, 5, "like", D0 + 26 * h),               # post 5 was served to user 2, not 1
    ]:
        db.execute("INSERT INTO feed.interactions (user_id, post_id, action, created_at) VALUES (%s, %s, %s, %s)",
                   [user, post, action, at])
    return ids


def wilson(k, n, z=1.959963984540054):
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def expected_results():
    return {"a": (2, 4, 2, 0.5, *wilson(2, 4)), "b": (1, 3, 1, 1 / 3, *wilson(1, 3))}


DAY0, DAY1 = D0.date(), (D0 + timedelta(days=1)).date()
EXPECTED_METRICS = {
    # (day, source): impressions, engagements, rate, repeat share, posts, authors
    (DAY0, "following"): (2, 2, 1.0, 0.0, 1, 1),
    (DAY0, "repeat"): (1, 0, 0.0, 1.0, 1, 1),
    (DAY0, "trending"): (2, 0, 0.0, 0.0, 2, 2),
    (DAY1, "following"): (1, 0, 0.0, 0.0, 1, 1),
    (DAY1, "trending"): (2, 1, 0.5, 0.0, 2, 2),
}
EXPECTED_PAGES = {DAY0: (2, 2.5, 1 / 6, 2.0), DAY1: (3, 1.0, 0.0, 1.0)}


def results(db):
    return {r[0]: tuple(r[1:]) for r in db.execute("SELECT * FROM feed.experiment_results('exp')").fetchall()}


def metrics(db):
    return {(r[0], r[1]): tuple(r[2:]) for r in db.execute("SELECT * FROM feed.feed_metrics('7 days')").fetchall()}


def pages(db):
    return {r[0]: tuple(r[1:]) for r in db.execute("SELECT * FROM feed._page_metrics('7 days')").fetchall()}


def assert_close(got: dict, expected: dict):
    assert got.keys() == expected.keys()
    for key, values in expected.items():
        assert got[key] == pytest.approx(values, abs=1e-9), key


def test_experiment_results_and_feed_metrics_on_a_hand_made_log(db):
    hand_made_log(db)
    assert_close(results(db), expected_results())
    assert_close(metrics(db), EXPECTED_METRICS)
    assert_close(pages(db), EXPECTED_PAGES)
    # a shorter attribution window keeps only user 3's save, one minute after serving
    db.execute("UPDATE feed.settings SET value = '30 minutes' WHERE name = 'attribution_window'")
    assert {k: v[:3] for k, v in results(db).items()} == {"a": (2, 4, 1), "b": (1, 3, 0)}


def test_results_survive_session_expiry_through_the_rollup(db):
    ids = hand_made_log(db)
    # s1 and s2's attribution windows have closed; s3 and s4 are still live
    db.execute("UPDATE feed.feed_sessions SET expires_at = now() - interval '2 days' WHERE session_id = ANY(%s)",
               [[ids["s1"], ids["s2"]]])
    rolled = db.execute("SELECT feed._rollup_analytics()").fetchone()[0]
    assert (rolled["sessions_rolled_up"], rolled["rows_rolled_up"]) == (2, 6)
    assert_close(results(db), expected_results())
    assert_close(metrics(db), EXPECTED_METRICS)
    assert_close(pages(db), EXPECTED_PAGES)
    # a second rollup finds nothing new
    assert db.execute("SELECT feed._rollup_analytics()").fetchone()[0]["rows_rolled_up"] == 0
    # maintenance deletes what was rolled up: nothing changes
    db.execute("DELETE FROM feed.feed_sessions s WHERE s.expires_at < feed._analytics_deletable_before()")
    assert db.execute("SELECT count(*) FROM feed.feed_sessions").fetchone()[0] == 2
    assert_close(results(db), expected_results())
    assert_close(metrics(db), EXPECTED_METRICS)
    assert_close(pages(db), EXPECTED_PAGES)


def test_results_list_every_variant_and_refuse_unknown_experiments(db):
    add_experiment(db, "fresh", {"control": {"weight": 1}, "new": {"weight": 1}})
    assert db.execute("SELECT * FROM feed.experiment_results('fresh')").fetchall() == [
        ("control", 0, 0, 0, None, None, None), ("new", 0, 0, 0, None, None, None)]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT * FROM feed.experiment_results('nope')")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT * FROM feed.feed_metrics('-1 day')")


def test_experiment_reasons(db):
    def reasons(value):
        return db.execute("SELECT feed._experiment_reasons(%s)", [json.dumps(value)]).fetchone()[0]

    assert reasons({}) == {}
    assert reasons({"exp": "a"}) == {"experiment": "exp", "variant": "a"}
    assert reasons({"exp": "a", "flag": "on"}) == {"experiments": {"exp": "a", "flag": "on"}}


# ---------------------------------------------------------------------------
# the feed applies the viewer's variants

def _variant_world(db):
    for post_id in range(1, 41):
        db.execute("INSERT INTO feed.posts (post_id, author_id, category, created_at)"
                   " VALUES (%s, %s, %s, now() - %s * interval '1 hour')",
                   [post_id, 100 + post_id % 7, ("art", "music", "film")[post_id % 3], post_id])


def test_the_feed_applies_the_variant_profile_and_settings_and_records_them(db):
    _variant_world(db)
    db.execute("""INSERT INTO feed.experiments (name, variants, status) VALUES ('flag',
                  '{"on": {"weight": 1, "profile": "hybrid", "settings": {"max_posts_per_author": "1"}}}', 'running')""")
    rows = db.execute("SELECT author_id, reasons FROM feed.get_personalized_feed(7, 12, NULL)").fetchall()
    assert all(r[1]["profile"] == "hybrid" and r[1]["experiment"] == "flag" and r[1]["variant"] == "on"
               for r in rows)
    # the variant's max_posts_per_author = 1: one post per author on the page (7 authors, so 7 rows
    # before the cap gives way)
    authors = [r[0] for r in rows]
    assert len(set(authors[:7])) == 7
    assert db.execute("SELECT experiments FROM feed.feed_sessions").fetchone()[0] == {"flag": "on"}
    # the override lived only inside the call
    assert db.execute("SELECT feed._setting('max_posts_per_author')").fetchone()[0] == "2"
    assert db.execute("SELECT current_setting('pgfeed.setting_overrides', true)").fetchone()[0] in (None, "", "{}")


def test_an_explicit_profile_wins_over_the_variant(db):
    _variant_world(db)
    db.execute("""INSERT INTO feed.experiments (name, variants, status) VALUES ('p',
                  '{"on": {"weight": 1, "profile": "hybrid"}}', 'running')""")
    rows = db.execute("""SELECT reasons FROM feed.get_personalized_feed(7, 5, NULL, '{"profile": "social"}')""").fetchall()
    assert {r[0]["profile"] for r in rows} == {"social"}
    assert all("experiment" not in r[0] for r in rows)


def test_explore_and_repeat_rows_carry_the_experiment_too(db):
    """Every row's reasons name the viewer's experiment and variant, the rows
    the exploration and controlled-repeat stages add included."""
    _variant_world(db)
    db.execute("""INSERT INTO feed.experiments (name, variants, status) VALUES ('explore-more',
                  '{"on": {"weight": 1, "settings": {"epsilon": 0.5}}}', 'running')""")
    db.execute("SELECT feed.record_interaction(7, 3, 'like')")
    # 40 posts, a page of 100: the 39 unseen (half the slots offered to exploration), then the
    # liked one as a controlled repeat
    rows = db.execute("SELECT source, is_repeat, reasons FROM feed.get_personalized_feed(7, 100, NULL)").fetchall()
    sources = {r[0] for r in rows}
    assert "explore" in sources and "repeat" in sources, sources
    for source, _, reasons in rows:
        assert (reasons.get("experiment"), reasons.get("variant")) == ("explore-more", "on"), (source, reasons)
