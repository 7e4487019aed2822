"""§4.11: random choices are fair, checked statistically over many sessions.

Worlds have gaps in their ids (a dense run of low ids, then ids scattered up
to a million), so a draw that leaned on ids, on the table's order or on gaps
would show. The bounds are loose multiples of the fair share: a fair draw
passes them with overwhelming probability, the old id-ordered draw did not.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from psycopg.types.json import Jsonb


def gappy_ids(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    dense = list(range(1, n // 10 + 1))                       # a dense run of low ids
    scattered = rng.sample(range(1_000, 1_000_000), n - len(dense))
    return sorted(dense + scattered)


def build(db, ids: list[int], categories=("art", "music", "jazz", "film")) -> None:
    rng = random.Random(len(ids))
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO feed.posts (post_id, author_id, category, created_at, like_count)"
            " VALUES (%s, %s, %s, now() - make_interval(mins => %s), %s)",
            [(post_id, 10_000 + i, rng.choice(categories), rng.randint(0, 60 * 24 * 20), rng.randint(0, 50))
             for i, post_id in enumerate(ids)])
    db.execute("SELECT feed.refresh_trending_scores('30 days')")


def first_page(db, viewer, size, context):
    return db.execute(
        "SELECT rank, post_id, source FROM feed.get_personalized_feed(%s, %s, NULL, %s)",
        [viewer, size, Jsonb(context)]).fetchall()


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_random_mode_gives_every_post_about_its_fair_share(db, analyzed):
    ids = gappy_ids(460, seed=3)
    build(db, ids)
    if analyzed:
        db.execute("ANALYZE feed.posts")   # the draw's window then spans a slice of the hash space
    sessions, size = 200, 12
    counts: Counter[int] = Counter()
    top: Counter[int] = Counter()
    for _ in range(sessions):
        page = first_page(db, 1, size, {"mode": "random"})
        assert len(page) == size and {row[2] for row in page} == {"random"}
        counts.update(row[1] for row in page)
        top[page[0][1]] += 1
    slots = sessions * size
    fair = slots / len(ids)                                   # about 5.2 per post
    assert max(counts.values()) <= 4 * fair, counts.most_common(5)
    # nearly every post reaches a first page (a fair draw misses about 0.6% of them)
    assert len(counts) >= 0.95 * len(ids), len(counts)
    # no favour by id: the lowest 5% of ids take about 5% of the slots, not half
    lowest = set(ids[: len(ids) // 20])
    assert sum(counts[i] for i in lowest) <= 2.5 * 0.05 * slots, sum(counts[i] for i in lowest)
    # nor by gaps: the dense run and the scattered ids fare alike
    dense = set(range(1, len(ids) // 10 + 1))
    dense_share = sum(counts[i] for i in dense) / slots
    assert 0.5 * 0.1 <= dense_share <= 2 * 0.1, dense_share
    # rank 1 in particular is not the lowest id
    assert sum(top[i] for i in lowest) <= 0.2 * sessions, sum(top[i] for i in lowest)


def test_random_pages_of_a_session_keep_drawing_uniformly(db):
    ids = gappy_ids(300, seed=11)
    build(db, ids)
    counts: Counter[int] = Counter()
    for _ in range(40):
        cursor = None
        for _ in range(3):
            rows = db.execute(
                "SELECT post_id, next_cursor FROM feed.get_personalized_feed(1, 10, %s, '{\"mode\": \"random\"}')",
                [cursor]).fetchall()
            counts.update(r[0] for r in rows)
            cursor = rows[0][1]
    fair = 40 * 3 * 10 / len(ids)
    assert max(counts.values()) <= 4 * fair + 2, counts.most_common(5)
    assert len(counts) >= 0.9 * len(ids)


def test_exploration_spreads_widely(db):
    ids = gappy_ids(240, seed=5)
    build(db, ids)
    db.execute("UPDATE feed.settings SET value = '0.25' WHERE name = 'epsilon'")   # 3 of 12 slots
    counts: Counter[int] = Counter()
    sessions = 150
    for _ in range(sessions):
        page = first_page(db, 1, 12, {})
        explored = [row[1] for row in page if row[2] == "explore"]
        assert len(explored) == 3
        counts.update(explored)
    slots = sum(counts.values())
    # the pool: eligible unseen posts no other source of the page offered
    # (the top of trending, fresh and rising are found by those sources)
    fair = slots / len(ids)
    assert max(counts.values()) <= 6 * fair + 2, counts.most_common(5)
    assert len(counts) >= 0.55 * len(ids), len(counts)
    lowest = set(ids[: len(ids) // 20])
    assert sum(counts[i] for i in lowest) <= 2.5 * 0.05 * slots
