"""Tag taste: the host's optional feed.posts.tags, each viewer's decayed
affinity per tag (the category affinity's signals, decay and range), the
tag_affinity component and the reasons that name the tags."""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from pgfeed.importer import ImportFailed, import_csv

from .helpers import add_post, fingerprint


def interact(db, user, post, action):
    return db.execute("SELECT feed.record_interaction(%s, %s, %s)", [user, post, action]).fetchone()[0]


def tag_affinities(db, user):
    return dict(db.execute("SELECT tag, affinity FROM feed.user_tag_affinity WHERE user_id = %s", [user]).fetchall())


def explain(db, user, post, profile):
    return db.execute("SELECT feed.explain_score(%s, %s, %s)", [user, post, Jsonb({"profile": profile})]).fetchone()[0]


def page(db, user, size=12, context=None):
    return db.execute("SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
                      " FROM feed.get_personalized_feed(%s, %s, NULL, %s)", [user, size, Jsonb(context or {})]
                      ).fetchall()


def tags_only_profile(db, top_k=None):
    params = {"epsilon": 0} if top_k is None else {"epsilon": 0, "tag_top_k": top_k}
    db.execute("INSERT INTO feed.ranking_profiles (name, description, weights, params)"
               " VALUES ('tags_only', 'Only the viewer''s taste for the post''s tags', %s, %s)",
               [Jsonb({"tag_affinity": 1}), Jsonb(params)])


# ---------------------------------------------------------------------------
# the column


def test_tags_are_stored_trimmed_lower_case_and_once(db):
    add_post(db, 1, tags=["  Jazz ", "PIANO", "jazz", "free \t  Jazz", "Piano"])
    assert db.execute("SELECT tags FROM feed.posts WHERE post_id = 1").fetchone()[0] == ["jazz", "piano", "free jazz"]
    db.execute("UPDATE feed.posts SET tags = ARRAY['Rock', ' rock'] WHERE post_id = 1")
    assert db.execute("SELECT tags FROM feed.posts WHERE post_id = 1").fetchone()[0] == ["rock"]
    add_post(db, 2, tags=[])
    add_post(db, 3)
    assert db.execute("SELECT post_id, tags FROM feed.posts WHERE post_id > 1 ORDER BY 1").fetchall() == [
        (2, []), (3, None)]


@pytest.mark.parametrize("tags, message", [
    (["jazz", None], "tags: tag 2 is null"),
    (["jazz", "   "], "tags: tag 2 is empty"),
    (["x" * 65], "tags: tag 1 is longer than 64 characters"),
    ([f"t{i}" for i in range(33)], "tags: at most 32 distinct tags per post, got 33"),
    ("{{a,b},{c,d}}", "tags: must be a one-dimensional array, got 2 dimensions"),
])
def test_bad_tags_are_refused_and_nothing_is_written(db, tags, message):
    add_post(db, 1, tags=["ok"])
    before = fingerprint(db)
    with pytest.raises(psycopg.Error) as insert:
        db.execute("INSERT INTO feed.posts (post_id, author_id, category, tags) VALUES (2, 1, 'art', %s::text[])",
                   [tags])
    with pytest.raises(psycopg.Error) as update:
        db.execute("UPDATE feed.posts SET tags = %s::text[] WHERE post_id = 1", [tags])
    for error in (insert.value, update.value):
        assert error.sqlstate == "22023"
        assert error.diag.message_primary == message
    assert fingerprint(db) == before


def test_exactly_32_tags_of_64_characters_are_fine(db):
    tags = [f"{i:02d}" + "x" * 62 for i in range(32)]
    add_post(db, 1, tags=tags + [tags[0].upper()])
    assert db.execute("SELECT cardinality(tags) FROM feed.posts").fetchone()[0] == 32


# ---------------------------------------------------------------------------
# the affinity


def test_a_like_moves_the_affinity_of_every_tag_with_the_category_decay(db):
    add_post(db, 1, category="music", tags=["jazz", "piano"])
    # one transaction, one now(): the stored affinity is exactly one half-life
    # (14 days) old when the like arrives, however long the statements take
    with db.transaction():
        db.execute("INSERT INTO feed.user_tag_affinity VALUES (7, 'jazz', 0.8, now() - interval '14 days'),"
                   " (7, 'rock', 0.5, now() - interval '14 days')")
        interact(db, 7, 1, "like")
        values = tag_affinities(db, 7)
        stamps = db.execute("SELECT count(*) FROM feed.user_tag_affinity WHERE user_id = 7 AND tag <> 'rock'"
                            " AND updated_at = now()").fetchone()[0]
    assert values["jazz"] == pytest.approx(0.8 * 0.5 + 0.10, abs=1e-12)
    assert values["piano"] == pytest.approx(0.10, abs=1e-12)
    assert values["rock"] == 0.5, "a tag the post does not carry is left alone"
    assert stamps == 2
    # the category moved by the same signal
    assert db.execute("SELECT affinity FROM feed.user_category_affinity WHERE user_id = 7").fetchone()[0] == \
        pytest.approx(0.10)


def test_negative_acts_push_tags_down_and_affinity_stays_within_bounds(db):
    add_post(db, 1, tags=["jazz"])
    add_post(db, 2, tags=["gore", "jazz"])
    with db.transaction():  # no decay between the calls: same now()
        for _ in range(6):
            interact(db, 7, 1, "trophy")
        assert tag_affinities(db, 7) == {"jazz": pytest.approx(1.0)}
        interact(db, 7, 2, "report")
        values = tag_affinities(db, 7)
    assert values == {"jazz": pytest.approx(0.5), "gore": pytest.approx(-0.5)}


def test_untagged_posts_write_no_tag_rows(db):
    add_post(db, 1)
    add_post(db, 2, tags=[])
    interact(db, 7, 1, "like")
    interact(db, 7, 2, "like")
    assert tag_affinities(db, 7) == {}


def test_the_rebuild_equals_the_write_path(db):
    add_post(db, 1, tags=["jazz", "piano"])
    add_post(db, 2, tags=["piano"])
    add_post(db, 3)
    db.execute("UPDATE feed.settings SET value = '20 milliseconds' WHERE name = 'category_affinity_half_life'")
    for user, post, action in [(7, 1, "like"), (7, 2, "share"), (8, 2, "dislike"), (7, 1, "unlike"),
                               (7, 3, "like"), (8, 1, "view"), (7, 2, "comment")]:
        interact(db, user, post, action)
    before = db.execute("SELECT * FROM feed.user_tag_affinity ORDER BY 1, 2").fetchall()
    assert len(before) == 4  # (7|8) x (jazz|piano)
    changes = db.execute("SELECT feed.rebuild_counters()").fetchone()[0]
    assert changes["user_tag_affinity"] == 0
    assert db.execute("SELECT * FROM feed.user_tag_affinity ORDER BY 1, 2").fetchall() == before
    # a partial rebuild of one viewer, after its rows were lost
    db.execute("DELETE FROM feed.user_tag_affinity WHERE user_id = 7")
    db.execute("SELECT feed._rebuild_derived_state_for('{7}', '{}')")
    assert db.execute("SELECT * FROM feed.user_tag_affinity ORDER BY 1, 2").fetchall() == before


# ---------------------------------------------------------------------------
# the component and the reasons


def test_the_component_is_the_mean_of_the_strongest_tags(db):
    add_post(db, 1, author_id=11, tags=["jazz", "piano"])
    add_post(db, 2, author_id=12, tags=["rock"])
    add_post(db, 3, author_id=13)
    add_post(db, 4, author_id=14, tags=["a", "b", "c", "d", "unknown"])
    tags_only_profile(db)
    with db.transaction():
        db.execute("INSERT INTO feed.user_tag_affinity VALUES (7, 'jazz', 0.6, now()), (7, 'piano', 0.2, now()),"
                   " (7, 'rock', -0.5, now()), (7, 'a', 0.9, now()), (7, 'b', -0.8, now()), (7, 'c', 0.1, now()),"
                   " (7, 'd', 0.05, now())")
        scores = {post: explain(db, 7, post, "tags_only") for post in (1, 2, 3, 4)}
        rows = page(db, 7, 12, {"profile": "tags_only"})
    assert scores[1]["components"]["tag_affinity"] == pytest.approx((0.6 + 0.2) / 2)
    assert scores[2]["components"]["tag_affinity"] == pytest.approx(-0.5)
    assert scores[3]["components"]["tag_affinity"] == 0
    # the 3 strongest of 5 tags: a, b, c (d is weaker, 'unknown' has no affinity)
    assert scores[4]["components"]["tag_affinity"] == pytest.approx((0.9 - 0.8 + 0.1) / 3, abs=1e-6)
    assert scores[1]["score"] == pytest.approx(0.4)
    assert [r[1] for r in rows] == [1, 4, 3, 2]
    reasons = {r[1]: r[6] for r in rows}
    assert reasons[1]["tags"] == ["jazz", "piano"]
    assert reasons[1]["tag_affinities"] == {"jazz": 0.6, "piano": 0.2}
    assert reasons[4]["tags"] == ["a", "b", "c"]
    assert reasons[2]["tags"] == ["rock"] and reasons[2]["tag_affinities"] == {"rock": -0.5}
    assert "tags" not in reasons[3], "no tag contributed"
    assert scores[1]["tags"] == ["jazz", "piano"] and scores[1]["contributions"]["tag_affinity"] == 0.4


def test_the_component_reads_decayed_affinities_and_top_k_is_a_profile_param(db):
    add_post(db, 1, tags=["jazz", "piano", "live"])
    tags_only_profile(db, top_k=1)
    with db.transaction():
        db.execute("INSERT INTO feed.user_tag_affinity VALUES (7, 'jazz', 0.6, now() - interval '14 days'),"
                   " (7, 'piano', 0.2, now() - interval '28 days')")
        top1 = explain(db, 7, 1, "tags_only")
        db.execute("UPDATE feed.ranking_profiles SET params = '{\"epsilon\": 0, \"tag_top_k\": 5}'"
                   " WHERE name = 'tags_only'")
        top5 = explain(db, 7, 1, "tags_only")
    assert top1["components"]["tag_affinity"] == pytest.approx(0.3)
    assert top1["tags"] == ["jazz"] and top1["tag_affinities"] == {"jazz": 0.3}
    # three tags, fewer than k: the mean over all three (live counts 0)
    assert top5["components"]["tag_affinity"] == pytest.approx((0.3 + 0.05) / 3, abs=1e-6)
    assert top5["tag_affinities"] == {"jazz": 0.3, "piano": 0.05}


def test_default_plus_ranks_the_viewers_tags_higher(db):
    # two posts equal in everything but their tags (one now(): the same age)
    with db.transaction():
        add_post(db, 1, author_id=11, tags=["metal"])
        add_post(db, 2, author_id=12, tags=["jazz"])
    with db.transaction():
        db.execute("INSERT INTO feed.user_tag_affinity VALUES (7, 'jazz', 0.8, now()), (7, 'metal', -0.4, now())")
        rows = page(db, 7, 2, {"profile": "default_plus"})
        plain = page(db, 8, 2, {"profile": "default_plus"})
    assert [r[1] for r in rows] == [2, 1]
    top = rows[0][6]
    assert top["contributions"]["tag_affinity"] == pytest.approx(0.05 * 0.8)
    assert top["tags"] == ["jazz"] and top["tag_affinities"] == {"jazz": 0.8}
    assert rows[1][6]["tags"] == ["metal"]
    # a viewer without tag affinities: post 1 wins the tie on post_id
    assert [r[1] for r in plain] == [1, 2]
    assert all("tags" not in r[6] for r in plain)
    assert rows[0][3] - rows[1][3] == pytest.approx(0.05 * 0.8 + 0.05 * 0.4)


def test_only_default_plus_weights_tags_and_the_seed_formulas_ignore_them(db):
    weights = dict(db.execute("SELECT name, weights FROM feed.ranking_profiles").fetchall())
    assert {name for name, w in weights.items() if "tag_affinity" in w} == {"default_plus"}
    add_post(db, 1, author_id=11, tags=["jazz", "piano"], like_count=5, comment_count=2, view_count=20)
    add_post(db, 2, author_id=12, like_count=1, view_count=3)
    interact(db, 7, 2, "like")
    profiles = ["default", "social", "blingram", "hybrid", "relevance", "default_plus"]
    with db.transaction():
        before = {(p, post): explain(db, 7, post, p) for p in profiles for post in (1, 2)}
        db.execute("INSERT INTO feed.user_tag_affinity VALUES (7, 'jazz', 0.9, now()), (7, 'piano', 0.7, now())")
        db.execute("UPDATE feed.posts SET tags = '{jazz}' WHERE post_id = 2")
        after = {(p, post): explain(db, 7, post, p) for p in profiles for post in (1, 2)}
        db.execute("UPDATE feed.posts SET tags = NULL")
        untagged = {(p, post): explain(db, 7, post, p) for p in profiles for post in (1, 2)}
    for key in before:
        assert untagged[key]["score"] == before[key]["score"], key
        assert untagged[key]["components"] == before[key]["components"], key
        if key[0] != "default_plus":
            assert after[key]["score"] == before[key]["score"], key
            assert "tags" not in after[key]
    assert after[("default_plus", 1)]["score"] == pytest.approx(before[("default_plus", 1)]["score"] + 0.05 * 0.8)


def test_the_tag_component_is_known_to_profiles(db):
    components = db.execute("SELECT feed._components()").fetchone()[0]
    assert components[-1] == "tag_affinity"
    with pytest.raises(psycopg.Error) as error:
        db.execute("UPDATE feed.ranking_profiles SET weights = '{\"tag_affinities\": 1}' WHERE name = 'hybrid'")
    assert error.value.sqlstate == "22023"


# ---------------------------------------------------------------------------
# import


def test_import_reads_tags_as_array_literals(db, db_dsn, tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text('post_id,author_id,category,tags\n1,10,music,"{Jazz,""Free  Jazz"",jazz}"\n2,10,art,\n')
    assert import_csv(db_dsn, "posts", path)["inserted"] == 2
    assert db.execute("SELECT post_id, tags FROM feed.posts ORDER BY 1").fetchall() == [
        (1, ["jazz", "free jazz"]), (2, None)]
    # the same file again changes nothing; a new value updates the known post
    assert import_csv(db_dsn, "posts", path)["updated"] == 0
    path.write_text("post_id,author_id,category,tags\n1,10,music,{rock}\n")
    assert import_csv(db_dsn, "posts", path)["updated"] == 1
    assert db.execute("SELECT tags FROM feed.posts WHERE post_id = 1").fetchone()[0] == ["rock"]


@pytest.mark.parametrize("value, message", [
    ('"{jazz,"" ""}"', "tags: tag 2 is empty"),
    ("not an array", "tags: 'not an array' is not an array literal"),
])
def test_import_refuses_bad_tags_and_imports_nothing(db, db_dsn, tmp_path, value, message):
    path = tmp_path / "posts.csv"
    path.write_text(f"post_id,author_id,category,tags\n1,10,music,{{ok}}\n2,10,art,{value}\n")
    with pytest.raises(ImportFailed) as error:
        import_csv(db_dsn, "posts", path)
    assert error.value.message.startswith(message) and error.value.line == 3
    assert db.execute("SELECT count(*) FROM feed.posts").fetchone()[0] == 0


# ---------------------------------------------------------------------------
# property: affinities stay in [-1, 1], the write path equals the rebuild

ACTIONS = ["view", "like", "unlike", "comment", "share", "save", "praise", "trophy", "gift", "tip",
           "not_interested", "dislike", "report"]
TAGS = ["jazz", "piano", "rock", "art", "live"]


@st.composite
def worlds(draw):
    posts = draw(st.lists(st.lists(st.sampled_from(TAGS), max_size=4), min_size=1, max_size=6))
    events = draw(st.lists(st.tuples(st.integers(1, 3), st.integers(0, len(posts) - 1), st.sampled_from(ACTIONS)),
                           min_size=1, max_size=30))
    half_life = draw(st.sampled_from(["0", "1 millisecond", "14 days"]))
    return posts, events, half_life


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds())
def test_affinities_stay_within_bounds_and_the_rebuild_agrees(db, world):
    posts, events, half_life = world
    db.execute("TRUNCATE feed.posts, feed.interactions, feed.impressions, feed.seen_posts, feed.hidden_posts,"
               " feed.user_author_affinity, feed.user_post_type_affinity, feed.user_category_affinity,"
               " feed.user_tag_affinity, feed.user_signals, feed.user_post_state, feed.user_taste,"
               " feed.feed_sessions, feed.feed_session_items, feed.analytics_engaged_rows RESTART IDENTITY")
    db.execute("UPDATE feed.settings SET value = %s WHERE name = 'category_affinity_half_life'", [half_life])
    for i, tags in enumerate(posts):
        add_post(db, i + 1, author_id=100 + i, tags=tags)
    for user, post, action in events:
        amount = 1 if action in ("gift", "tip") else 0
        db.execute("SELECT feed.record_interaction(%s, %s, %s, %s)", [user, post + 1, action, amount])
    stored = db.execute("SELECT min(affinity), max(affinity), count(*) FROM feed.user_tag_affinity").fetchone()
    if stored[2]:
        assert -1 <= stored[0] <= stored[1] <= 1
    tagged_users = {u for u, p, _ in events if posts[p]}
    assert {r[0] for r in db.execute("SELECT DISTINCT user_id FROM feed.user_tag_affinity")} == tagged_users
    for user in {u for u, _, _ in events}:
        for post in range(1, len(posts) + 1):
            value = explain(db, user, post, "default_plus")["components"]["tag_affinity"]
            assert -1 <= value <= 1
    assert db.execute("SELECT feed.rebuild_counters()").fetchone()[0]["user_tag_affinity"] == 0
