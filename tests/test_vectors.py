"""Vectors: similar_posts and _taste_candidates through the HNSW index, taste vectors and their rebuild."""

from __future__ import annotations

import math
import random

import psycopg
import pytest

from .helpers import add_post, nested_plans

DIM = 384


# ---------------------------------------------------------------------------
# helpers

def unit(v):
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def literal(v) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in v) + "]"


def parse(text: str):
    return [float(x) for x in text.strip("[]").split(",")]


def clustered_vectors(rng: random.Random, n: int, clusters: int = 8, noise: float = 0.35):
    """Embeddings with some structure (like real ones): cluster centres plus noise."""
    centres = [[rng.gauss(0, 1) for _ in range(DIM)] for _ in range(clusters)]
    out = []
    for i in range(n):
        c = centres[i % clusters]
        out.append([x + rng.gauss(0, noise) for x in c])
    return out


def insert_posts(db, vectors, start_id=1, **columns):
    """Posts start_id.. with the given embeddings, in one COPY."""
    names = ["post_id", "author_id", "category", "embedding", *columns]
    with db.cursor() as cur, cur.copy(f"COPY feed.posts ({', '.join(names)}) FROM STDIN") as copy:
        for offset, vector in enumerate(vectors):
            copy.write_row([start_id + offset, 5000 + start_id + offset, "art", literal(vector),
                            *columns.values()])
    db.execute("ANALYZE feed.posts")


def similar(db, post_id, limit=20):
    return db.execute("SELECT post_id, similarity FROM feed.similar_posts(%s, %s)", [post_id, limit]).fetchall()


def brute_force(vectors_by_id, query_id, eligible_ids, limit):
    q = vectors_by_id[query_id]
    scored = sorted(((-cosine(q, vectors_by_id[i]), i) for i in eligible_ids if i != query_id))
    return [(i, -s) for s, i in scored[:limit]]


def taste(db, user_id):
    row = db.execute("SELECT taste::text, strength FROM feed.user_taste WHERE user_id = %s", [user_id]).fetchone()
    return (parse(row[0]), row[1]) if row else None


def set_embedding(db, post_id, vector):
    db.execute("UPDATE feed.posts SET embedding = %s::vector WHERE post_id = %s", [literal(vector), post_id])


# ---------------------------------------------------------------------------
# similar_posts

def test_similar_posts_matches_brute_force_cosine(db):
    rng = random.Random(1)
    vectors = clustered_vectors(rng, 300)
    insert_posts(db, vectors)
    by_id = {i + 1: v for i, v in enumerate(vectors)}
    for query in (1, 17, 150, 299):
        got = similar(db, query, 20)
        want = brute_force(by_id, query, by_id.keys(), 20)
        assert [p for p, _ in got] == [p for p, _ in want]
        for (_, s_got), (_, s_want) in zip(got, want):
            assert s_got == pytest.approx(s_want, abs=1e-5)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


def test_similar_posts_fills_the_limit_when_filters_remove_most_near_neighbours(db):
    """59 of the 60 nearest posts are ineligible, more than ef_search (40): only the
    iterative index scan finds 20 eligible ones."""
    rng = random.Random(2)
    centre = [rng.gauss(0, 1) for _ in range(DIM)]
    near = [[x + rng.gauss(0, 0.05) for x in centre] for _ in range(61)]       # post 1 and 60 near ones
    far = [[x + rng.gauss(0, 1.5) for x in centre] for _ in range(400)]
    insert_posts(db, near + far)
    by_id = {i + 1: v for i, v in enumerate(near + far)}
    # every kind of ineligibility (contract §4.1), spread over the near neighbours
    db.execute("UPDATE feed.posts SET is_deleted = true WHERE post_id BETWEEN 2 AND 13")
    db.execute("UPDATE feed.posts SET visibility = 'removed' WHERE post_id BETWEEN 14 AND 25")
    db.execute("UPDATE feed.posts SET visibility = 'shadow_ban' WHERE post_id BETWEEN 26 AND 37")
    db.execute("UPDATE feed.posts SET media_ready = false WHERE post_id BETWEEN 38 AND 49")
    db.execute("UPDATE feed.posts SET duration_ms = 180001 WHERE post_id BETWEEN 50 AND 60")
    db.execute("UPDATE feed.posts SET duration_ms = 180000 WHERE post_id = 61")  # at the cap: still shown
    eligible = [i for i in by_id if i > 60]

    got = similar(db, 1, 20)
    want = brute_force(by_id, 1, eligible, 20)
    assert len(got) == 20
    assert [p for p, _ in got] == [p for p, _ in want]
    assert got[0][0] == 61
    # also without the iterative scan's help from the session: the function sets it itself
    db.execute("SET hnsw.iterative_scan = off")
    assert [p for p, _ in similar(db, 1, 20)] == [p for p, _ in want]


def test_similar_posts_returns_every_eligible_post_when_fewer_than_the_limit(db):
    rng = random.Random(3)
    vectors = clustered_vectors(rng, 30)
    insert_posts(db, vectors)
    db.execute("UPDATE feed.posts SET embedding = NULL WHERE post_id BETWEEN 21 AND 25")
    db.execute("UPDATE feed.posts SET is_deleted = true WHERE post_id > 25")
    got = similar(db, 1, 100)
    assert sorted(p for p, _ in got) == list(range(2, 21))


def test_similar_posts_orders_ties_by_post_id_and_skips_itself(db):
    v = [1.0] + [0.0] * (DIM - 1)
    w = [0.0, 1.0] + [0.0] * (DIM - 2)
    insert_posts(db, [v, w, v, v, w])
    got = similar(db, 1, 10)
    assert [p for p, _ in got] == [3, 4, 2, 5]
    assert [round(s, 6) for _, s in got] == [1.0, 1.0, 0.0, 0.0]


def test_similar_posts_without_embedding_is_empty(db):
    add_post(db, 1)
    insert_posts(db, clustered_vectors(random.Random(4), 5), start_id=2)
    assert similar(db, 1) == []
    db.execute("UPDATE feed.posts SET embedding = %s::vector WHERE post_id = 1", [literal([0.0] * DIM)])
    assert similar(db, 1) == []  # a zero vector has no direction


@pytest.mark.parametrize("limit", [0, -1, 1001, None])
def test_similar_posts_rejects_a_bad_limit(db, limit):
    add_post(db, 1)
    with pytest.raises(psycopg.Error) as exc:
        similar(db, 1, limit)
    assert exc.value.sqlstate == "22023"
    assert str(exc.value.diag.message_primary).startswith("p_limit")


def test_similar_posts_of_a_missing_post_is_23503(db):
    with pytest.raises(psycopg.Error) as exc:
        similar(db, 999)
    assert exc.value.sqlstate == "23503"
    with pytest.raises(psycopg.Error) as exc:
        similar(db, None)
    assert exc.value.sqlstate == "22023"


def test_similar_posts_default_limit_is_20(db):
    insert_posts(db, clustered_vectors(random.Random(5), 40))
    assert len(db.execute("SELECT * FROM feed.similar_posts(1)").fetchall()) == 20


def test_similar_posts_and_taste_candidates_use_the_hnsw_index(db):
    rng = random.Random(6)
    insert_posts(db, clustered_vectors(rng, 2000, clusters=20))
    db.execute("INSERT INTO feed.user_taste (user_id, taste, strength) SELECT 7, embedding, 0.5"
               " FROM feed.posts WHERE post_id = 3")
    # at this size the planner picks the index by itself
    plans = nested_plans(db, "SELECT * FROM feed.similar_posts(1, 20)", [])
    assert "post_embeddings_hnsw_idx" in plans
    plans = nested_plans(db, "SELECT * FROM feed._taste_candidates(7, 50)", [])
    assert "post_embeddings_hnsw_idx" in plans


def test_the_similar_source_serves_profiles_that_weight_taste_only(db):
    rng = random.Random(11)
    vectors = clustered_vectors(rng, 200)
    insert_posts(db, vectors)
    db.execute("SELECT feed.record_interaction(7, 5, 'like')")
    # the ladder widens the source (one category: every step is taken), at most 64 nearest
    nearest = {r[0] for r in db.execute("SELECT post_id FROM feed._taste_candidates(7, 64)").fetchall()}
    rows = db.execute("SELECT post_id, source FROM feed.get_personalized_feed(7, 12, NULL, '{\"profile\": \"hybrid\"}')"
                      ).fetchall()
    similar_rows = {p for p, source in rows if source == "similar"}
    assert similar_rows and similar_rows <= nearest
    # default weights no taste: its pages never pay for the nearest-neighbour search
    rows = db.execute("SELECT post_id, source FROM feed.get_personalized_feed(7, 12, NULL, '{\"profile\": \"default\"}')"
                      ).fetchall()
    assert rows and not [p for p, source in rows if source == "similar"]


# ---------------------------------------------------------------------------
# _taste_candidates

def test_taste_candidates_are_the_nearest_eligible_posts_to_the_taste(db):
    rng = random.Random(7)
    vectors = clustered_vectors(rng, 200)
    insert_posts(db, vectors)
    by_id = {i + 1: v for i, v in enumerate(vectors)}
    db.execute("UPDATE feed.posts SET visibility = 'shadow_ban' WHERE post_id % 3 = 0")
    db.execute("SELECT feed.record_interaction(7, 5, 'like')")
    db.execute("SELECT feed.record_interaction(7, 13, 'share')")
    t, _ = taste(db, 7)
    got = db.execute("SELECT post_id, similarity FROM feed._taste_candidates(7, 15)").fetchall()
    eligible = [i for i in by_id if i % 3 != 0]
    want = sorted(eligible, key=lambda i: (-cosine(t, by_id[i]), i))[:15]
    assert [p for p, _ in got] == want
    assert got[0][1] == pytest.approx(cosine(t, by_id[want[0]]), abs=1e-5)
    # the viewer's own acts are the feed's business, not this function's: 5 may come back
    assert db.execute("SELECT count(*) FROM feed._taste_candidates(8, 15)").fetchone()[0] == 0
    with pytest.raises(psycopg.Error) as exc:
        db.execute("SELECT * FROM feed._taste_candidates(7, 0)")
    assert exc.value.sqlstate == "22023"


# ---------------------------------------------------------------------------
# taste vectors

ALPHA = 0.1
WEIGHTS = {"view": 1.0, "like": 1.0, "comment": 1.5, "share": 2.0, "save": 1.5, "praise": 1.5, "trophy": 2.0,
           "gift": 2.5, "tip": 2.5, "not_interested": -1.0, "dislike": -1.5, "report": -2.0}


def reference_taste(events, embeddings, alpha=ALPHA):
    """The documented moving average, step by step: T' = (1 - |a|) T + a e, a = sign(w) min(alpha |w|, 0.9)."""
    state = None
    for action, post, ratio in events:
        w = WEIGHTS["view"] * (ratio or 0.0) if action == "view" else WEIGHTS.get(action, 0.0)
        e = embeddings.get(post)
        if not w or e is None:
            continue
        a = math.copysign(min(alpha * abs(w), 0.9), w)
        if state is None:
            if a < 0:
                continue
            state = [0.0] * DIM
        e = unit(e)
        state = [(1 - abs(a)) * t + a * x for t, x in zip(state, e)]
    if state is None:
        return None
    norm = math.sqrt(sum(x * x for x in state))
    return [x / norm for x in state], norm


def test_a_like_pulls_the_taste_to_the_post(db):
    rng = random.Random(8)
    a, b = clustered_vectors(rng, 2, clusters=2, noise=1.0)
    insert_posts(db, [a, b])
    db.execute("SELECT feed.record_interaction(7, 1, 'like')")
    t, strength = taste(db, 7)
    assert cosine(t, a) == pytest.approx(1.0, abs=1e-6)
    assert math.sqrt(sum(x * x for x in t)) == pytest.approx(1.0, abs=1e-5)
    assert strength == pytest.approx(ALPHA, rel=1e-5)

    before = cosine(t, b)
    db.execute("SELECT feed.record_interaction(7, 2, 'share')")
    t2, strength2 = taste(db, 7)
    assert cosine(t2, b) > before
    want, want_strength = reference_taste([("like", 1, None), ("share", 2, None)], {1: a, 2: b})
    assert cosine(t2, want) == pytest.approx(1.0, abs=1e-6)
    assert strength2 == pytest.approx(want_strength, rel=1e-4)


@pytest.mark.parametrize("action", ["not_interested", "dislike", "report"])
def test_negative_acts_push_the_taste_away(db, action):
    rng = random.Random(9)
    a, b = clustered_vectors(rng, 2, clusters=2, noise=1.0)
    insert_posts(db, [a, b])
    db.execute("SELECT feed.record_interaction(7, 1, 'like')")
    t, _ = taste(db, 7)
    before = cosine(t, b)
    db.execute("SELECT feed.record_interaction(7, 2, %s)", [action])
    t2, _ = taste(db, 7)
    assert cosine(t2, b) < before
    assert math.sqrt(sum(x * x for x in t2)) == pytest.approx(1.0, abs=1e-5)


def test_what_leaves_the_taste_alone(db):
    rng = random.Random(10)
    insert_posts(db, clustered_vectors(rng, 3))
    add_post(db, 9)  # no embedding
    # a negative act before any positive one: no anti-taste
    db.execute("SELECT feed.record_interaction(7, 1, 'dislike')")
    # a post without embedding, a view without watch ratio, an unlike
    db.execute("SELECT feed.record_interaction(7, 9, 'like')")
    db.execute("SELECT feed.record_interaction(7, 2, 'view')")
    db.execute("SELECT feed.record_interaction(7, 2, 'unlike')")
    assert taste(db, 7) is None

    db.execute("SELECT feed.record_interaction(7, 3, 'like')")
    before = taste(db, 7)
    for action in ("view", "unlike"):
        db.execute("SELECT feed.record_interaction(7, 2, %s)", [action])
    db.execute("SELECT feed.record_interaction(7, 9, 'share')")
    assert taste(db, 7) == before


def test_a_watched_view_pulls_by_its_watch_ratio(db):
    rng = random.Random(11)
    a, b = clustered_vectors(rng, 2, clusters=2, noise=1.0)
    insert_posts(db, [a, b])
    db.execute("SELECT feed.record_interaction(7, 1, 'like')")
    db.execute("SELECT feed.record_watch_progress(7, 2, 3000, 10000)")
    t, strength = taste(db, 7)
    want, want_strength = reference_taste([("like", 1, None), ("view", 2, 0.3)], {1: a, 2: b})
    assert cosine(t, want) == pytest.approx(1.0, abs=1e-6)
    assert strength == pytest.approx(want_strength, rel=1e-4)


def test_taste_alpha_is_a_setting(db):
    insert_posts(db, clustered_vectors(random.Random(12), 1))
    db.execute("UPDATE feed.settings SET value = '0.3' WHERE name = 'taste_alpha'")
    db.execute("SELECT feed.record_interaction(7, 1, 'like')")
    assert taste(db, 7)[1] == pytest.approx(0.3, rel=1e-5)


def test_rebuild_taste_vectors_equals_the_sequence_of_updates(db):
    rng = random.Random(13)
    vectors = clustered_vectors(rng, 25, clusters=5, noise=0.8)
    insert_posts(db, vectors)
    add_post(db, 99)  # without embedding
    embeddings = {i + 1: v for i, v in enumerate(vectors)}
    actions = ["view", "like", "unlike", "comment", "share", "save", "praise", "trophy", "not_interested",
               "dislike", "report"]
    events = {u: [] for u in (1, 2, 3, 4)}
    for _ in range(120):
        user = rng.choice(list(events))
        post = rng.choice(list(embeddings) + [99])
        if rng.random() < 0.2:
            watched, liked = rng.randint(0, 12000), rng.random() < 0.3
            db.execute("SELECT feed.record_watch_progress(%s, %s, %s, 10000, %s)", [user, post, watched, liked])
            events[user].append(("view", post, min(watched / 10000, 1.0)))
            if liked:
                events[user].append(("like", post, None))
        else:
            action = rng.choice(actions)
            db.execute("SELECT feed.record_interaction(%s, %s, %s)", [user, post, action])
            events[user].append((action, post, None))
    # gifts and tips too
    db.execute("SELECT feed.record_interaction(2, 3, 'gift', 5)")
    db.execute("SELECT feed.record_interaction(2, 4, 'tip', 1)")
    events[2] += [("gift", 3, None), ("tip", 4, None)]
    # user 5 only ever disliked: no taste
    db.execute("SELECT feed.record_interaction(5, 1, 'dislike')")

    incremental = {r[0]: (parse(r[1]), r[2], r[3]) for r in db.execute(
        "SELECT user_id, taste::text, strength, updated_at FROM feed.user_taste")}
    assert 5 not in incremental
    assert len(incremental) >= 3

    for user, (t, strength, _) in incremental.items():
        want, want_strength = reference_taste(events[user], embeddings)
        assert cosine(t, want) == pytest.approx(1.0, abs=1e-5)
        assert strength == pytest.approx(want_strength, rel=1e-4)

    # start from scratch, plus a stale row of a viewer without any signal (it disappears)
    db.execute("TRUNCATE feed.user_taste")
    db.execute("INSERT INTO feed.user_taste (user_id, taste, strength) SELECT 77, embedding, 1"
               " FROM feed.posts WHERE post_id = 1")
    written = db.execute("SELECT feed._rebuild_taste_vectors()").fetchone()[0]
    rebuilt = {r[0]: (parse(r[1]), r[2], r[3]) for r in db.execute(
        "SELECT user_id, taste::text, strength, updated_at FROM feed.user_taste")}
    assert written == len(rebuilt) == len(incremental)
    assert rebuilt.keys() == incremental.keys()
    for user, (t, strength, updated_at) in incremental.items():
        r_t, r_strength, r_updated_at = rebuilt[user]
        assert cosine(t, r_t) == pytest.approx(1.0, abs=1e-5)
        assert r_strength == pytest.approx(strength, rel=1e-4, abs=1e-6)
        assert r_updated_at == updated_at


def test_rebuild_taste_vectors_follows_the_documented_formula(db):
    rng = random.Random(14)
    vectors = clustered_vectors(rng, 6, clusters=3, noise=1.0)
    insert_posts(db, vectors)
    embeddings = {i + 1: v for i, v in enumerate(vectors)}
    events = [("dislike", 2, None), ("like", 1, None), ("comment", 3, None), ("not_interested", 4, None),
              ("trophy", 5, None), ("report", 6, None), ("like", 2, None)]
    # logged directly, as a bulk loader would, then rebuilt
    for n, (action, post, _) in enumerate(events):
        db.execute("INSERT INTO feed.interactions (user_id, post_id, action, created_at)"
                   " VALUES (7, %s, %s, now() - %s * interval '1 minute')", [post, action, len(events) - n])
    assert db.execute("SELECT feed._rebuild_taste_vectors()").fetchone()[0] == 1
    t, strength = taste(db, 7)
    want, want_strength = reference_taste(events, embeddings)
    assert cosine(t, want) == pytest.approx(1.0, abs=1e-5)
    assert strength == pytest.approx(want_strength, rel=1e-4)


def test_rebuild_taste_vectors_of_some_viewers(db):
    rng = random.Random(15)
    vectors = clustered_vectors(rng, 6, clusters=3, noise=1.0)
    insert_posts(db, vectors)
    for user in (1, 2, 3):
        db.execute("SELECT feed.record_interaction(%s, %s, 'like')", [user, user])
        db.execute("SELECT feed.record_interaction(%s, %s, 'share')", [user, user + 3])
    before = {r[0]: (parse(r[1]), r[2]) for r in db.execute("SELECT user_id, taste::text, strength FROM feed.user_taste")}
    db.execute("UPDATE feed.user_taste SET strength = 0.5, taste = %s::vector", [literal(vectors[0])])
    assert db.execute("SELECT feed._rebuild_taste_vectors(ARRAY[1, 3]::bigint[])").fetchone()[0] == 2
    after = {r[0]: (parse(r[1]), r[2]) for r in db.execute("SELECT user_id, taste::text, strength FROM feed.user_taste")}
    for user in (1, 3):
        assert cosine(after[user][0], before[user][0]) == pytest.approx(1.0, abs=1e-5)
        assert after[user][1] == pytest.approx(before[user][1], rel=1e-4)
    assert after[2][1] == 0.5                       # untouched
    # a viewer whose signals are gone loses the row; others keep theirs
    db.execute("DELETE FROM feed.interactions WHERE user_id = 3")
    assert db.execute("SELECT feed._rebuild_taste_vectors(ARRAY[3]::bigint[])").fetchone()[0] == 0
    assert sorted(r[0] for r in db.execute("SELECT user_id FROM feed.user_taste")) == [1, 2]


def test_signals_that_cancel_out_leave_no_taste(db):
    """A gift (step 0.25) then a report (step -0.2) of the same post: 0.8 * 0.25 - 0.2 = 0."""
    insert_posts(db, clustered_vectors(random.Random(16), 30))
    db.execute("SELECT feed.record_interaction(7, 1, 'gift', 5)")
    db.execute("SELECT feed.record_interaction(7, 1, 'report')")
    t, strength = taste(db, 7)
    assert strength == 0 and set(t) == {0.0}
    assert db.execute("SELECT count(*) FROM feed._taste_candidates(7, 10)").fetchone()[0] == 0
    db.execute("SELECT feed._rebuild_taste_vectors()")
    assert taste(db, 7) == (t, 0)
    # a later signal starts from nothing
    db.execute("SELECT feed.record_interaction(7, 2, 'like')")
    t2, strength2 = taste(db, 7)
    assert strength2 == pytest.approx(ALPHA, rel=1e-5)
    db.execute("SELECT feed._rebuild_taste_vectors()")
    t3, strength3 = taste(db, 7)
    assert cosine(t2, t3) == pytest.approx(1.0, abs=1e-6) and strength3 == pytest.approx(strength2, rel=1e-5)
