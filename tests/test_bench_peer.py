"""The bench's naive peer is the art-community formula, the same one the `social`
profile ships: on a hand-made world its score for every post equals the profile's
formula score, and it honours its own window and cooldown."""

from __future__ import annotations

import pytest

from pgfeed import bench

from .helpers import add_post


@pytest.fixture
def world(db):
    for i in range(1, 31):
        add_post(db, i, author_id=100 + i % 5, category="art", post_type=["image", "video"][i % 2],
                 age=f"{i * 3} hours", like_count=i % 4, comment_count=i % 3, praise_count=i % 2,
                 collective_id=7 if i % 4 == 0 else None)
    add_post(db, 31, author_id=101, age="10 days")       # outside the 7-day window
    add_post(db, 32, author_id=101, age="2 hours", visibility="removed")
    db.execute("INSERT INTO feed.follows VALUES (1, 101), (1, 103)")
    db.execute("INSERT INTO feed.collective_members VALUES (7, 1)")
    # six hearts on videos: past any cap on post-type taste
    for post, action in ((2, "like"), (7, "like"), (8, "praise"), (3, "comment"), (9, "like"), (11, "like"),
                         (13, "trophy"), (15, "like"), (17, "praise")):
        db.execute("SELECT feed.record_interaction(1, %s, %s)", [post, action])
    db.execute("SELECT feed.record_impressions(1, ARRAY[5, 6]::bigint[])")
    return db


def peer(db, user, window):
    return db.execute(bench.PEER_SQL, {"user": user, "window": window}).fetchall()


def test_the_peer_scores_posts_by_the_social_profile_formula(world):
    with world.transaction():  # one now() for both: recency moves between statements
        rows = peer(world, 1, "7 days")
        assert len(rows) == 12
        scores = [float(score) for _, score in rows]
        assert scores == sorted(scores, reverse=True)
        for post_id, score in rows:
            reasons = world.execute("SELECT feed.explain_score(1, %s, '{\"profile\": \"social\"}')",
                                    [post_id]).fetchone()[0]
            assert float(score) == pytest.approx(reasons["formula_score"], rel=1e-9), (post_id, reasons)


def test_the_peer_keeps_its_window_and_cooldown(world):
    everything = {post_id for post_id, _ in world.execute(bench.PEER_SQL.replace("LIMIT 12", ""),
                                                          {"user": 1, "window": "7 days"}).fetchall()}
    # seen (interacted with or shown) posts wait out the cooldown; removed and old ones never come
    assert everything == set(range(1, 31)) - {2, 3, 5, 6, 7, 8, 9, 11, 13, 15, 17}
    assert {post_id for post_id, _ in peer(world, 1, "24 hours")} <= {1, 4}  # ages 3..21 hours
