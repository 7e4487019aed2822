"""build_recommendations with recommendation_regularization above 0: each post's
neighbour weights are a ridge regression over its most similar posts (a sparse
EASE), solved in SQL by conjugate gradients over pgvector rows."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from .helpers import add_post
from .test_recommendations import build, log, posts, rec_ids, recs, settings


def set_(db, name, value):
    db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [str(value), name])


@pytest.fixture(autouse=True)
def regression(db):
    set_(db, "recommendation_min_support", 1)
    set_(db, "recommendation_regularization", 2)
    set_(db, "recommendation_regression_steps", 100)   # CG is exact in at most dims steps


def weights(db) -> dict:
    return {(p, q): s for p, q, s in db.execute("SELECT post_id, neighbor_id, score FROM feed.item_neighbors")}


def solve(matrix, rhs):
    """Gaussian elimination with partial pivoting (the systems are small and positive definite)."""
    n = len(rhs)
    a = [list(row) + [rhs[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col and a[r][col] != 0:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col])]
    return [a[i][n] / a[i][i] for i in range(n)]


def reference_weights(histories, eligible, cfg, cap=None):
    """The documented regression, in plain Python. histories: viewer -> posts, most
    recent first (positives only); eligible: posts anybody may see; cap: inputs each
    target keeps at most (the budget's cut; default recommendation_neighbors)."""
    pair_cap = int(cfg["recommendation_pair_history"])
    g = float(cfg["recommendation_history_exponent"])
    b = float(cfg["recommendation_popularity_exponent"])
    shrink = float(cfg["recommendation_shrinkage"])
    k = int(cfg["recommendation_neighbors"])
    support = int(cfg["recommendation_min_support"])
    lam = float(cfg["recommendation_regularization"])

    viewers, together, weighted = defaultdict(int), defaultdict(int), defaultdict(float)
    for items in histories.values():
        paired = items[:pair_cap]
        for i in paired:
            viewers[i] += 1
    for items in histories.values():
        paired = [i for i in items[:pair_cap] if viewers[i] >= support]
        weight = min(len(items), pair_cap) ** -g
        for i in paired:
            for j in paired:
                if i != j:
                    together[(i, j)] += 1
                    weighted[(i, j)] += weight
    pairs = {key for key, n in together.items() if n >= support}
    found = {}
    for target in {j for _, j in pairs if j in eligible}:
        ranked = sorted((i for i, j in pairs if j == target),
                        key=lambda i: (-weighted[(i, target)] / (viewers[i] * viewers[target] ** b + shrink), i))
        inputs = ranked[:k if cap is None else min(k, cap)]
        matrix = [[viewers[r] + lam if r == c else (together[(r, c)] if (r, c) in pairs else 0) for c in inputs]
                  for r in inputs]
        for i, w in zip(inputs, solve(matrix, [together[(i, target)] for i in inputs])):
            found[(i, target)] = w
    kept = {}
    by_input = defaultdict(list)
    for (i, j), w in found.items():
        by_input[i].append((-w, j))
    for i, lst in by_input.items():
        for w, j in sorted(lst)[:k]:
            kept[(i, j)] = -w
    return kept


def random_world(db, rng, n_posts=30, n_users=40, events=300):
    for p in range(1, n_posts + 1):
        add_post(db, p, author_id=1000 + p)
    db.execute("UPDATE feed.posts SET is_deleted = true WHERE post_id = 5")
    history = defaultdict(dict)
    for _ in range(events):
        user = rng.randint(1, n_users)
        post = min(rng.randint(1, n_posts), rng.randint(1, n_posts))   # popular posts are more popular
        ago = rng.uniform(1, 60 * 24 * 20)
        log(db, user, post, minutes_ago=ago)
        history[user][post] = min(ago, history[user].get(post, ago))
    # most recent first, ties by post id descending (as build_recommendations orders them)
    return {u: [p for p, _ in sorted(h.items(), key=lambda x: (x[1], -x[0]))] for u, h in history.items()}


@pytest.mark.parametrize("inputs, pair_history, support", [(100, 100, 1), (4, 100, 1), (6, 5, 2)])
def test_weights_solve_each_posts_ridge_regression(db, inputs, pair_history, support):
    rng = random.Random(11)
    histories = random_world(db, rng)
    set_(db, "recommendation_neighbors", inputs)
    set_(db, "recommendation_pair_history", pair_history)
    set_(db, "recommendation_min_support", support)
    if inputs < 100:
        # every viewer weighs 1: similarities are exact, so ties (broken by post id) cut alike
        set_(db, "recommendation_history_exponent", 0)
    build(db)
    eligible = {p for (p,) in db.execute("SELECT post_id FROM feed.posts WHERE NOT is_deleted")}
    want = reference_weights(histories, eligible, settings(db))
    got = weights(db)
    assert want and got.keys() == want.keys()
    for key, w in want.items():
        assert got[key] == pytest.approx(w, rel=2e-3, abs=2e-5), key
    # a deleted post is never a target, but still an input
    assert not any(q == 5 for _, q in got) and any(p == 5 for p, _ in got)
    # recommendations: sums of weights, normalized per viewer, positive only
    rows = db.execute("SELECT user_id, max(score), min(score) FROM feed.recommendations GROUP BY user_id").fetchall()
    assert rows
    for _, best, worst in rows:
        assert best == pytest.approx(1.0) and worst > 0
    assert db.execute("SELECT DISTINCT algorithm FROM feed.recommendations").fetchall() == [("regression",)]


def test_inputs_that_say_the_same_thing_share_their_weight(db):
    """Posts 1 and 2 always go together (a film and its sequel), post 3 goes alone; each
    goes with target 4 as often and without it as often. Item KNN gives all three the same
    similarity to 4, so a viewer of 1 and 2 gets 4 twice as strongly as a viewer of 3; the
    regression sees that 2 says nothing 1 did not, and weighs each of them less than 3."""
    set_(db, "recommendation_history_exponent", 0)   # every viewer weighs 1: equal similarities
    posts(db, 1, 2, 3, 4)
    viewer = 0
    for together in ([1, 2, 4], [3, 4], [1, 2], [3]):
        for _ in range(4):
            viewer += 1
            for post in together:
                log(db, viewer, post)
    log(db, 100, 1)
    log(db, 100, 2)
    log(db, 101, 3)

    def raw(user, post):
        return {r[0]: r[2]["raw_score"] for r in recs(db, user)}[post]

    set_(db, "recommendation_regularization", 0)
    build(db)
    knn = weights(db)
    knn_ratio = raw(100, 4) / raw(101, 4)
    set_(db, "recommendation_regularization", 2)
    build(db)
    reg = weights(db)
    reg_ratio = raw(100, 4) / raw(101, 4)

    assert knn[(1, 4)] == pytest.approx(knn[(3, 4)]) and knn[(2, 4)] == pytest.approx(knn[(3, 4)])
    assert knn_ratio == pytest.approx(2)
    assert reg[(1, 4)] == pytest.approx(reg[(2, 4)], rel=1e-4)
    assert reg[(1, 4)] < reg[(3, 4)]
    assert 1 < reg_ratio < knn_ratio


def test_a_stronger_penalty_shrinks_every_weight_toward_zero(db):
    rng = random.Random(4)
    random_world(db, rng, n_posts=15, n_users=20, events=120)
    build(db)
    light = weights(db)
    set_(db, "recommendation_regularization", 1000)
    build(db)
    heavy = weights(db)
    assert light.keys() == heavy.keys()
    assert sum(abs(w) for w in heavy.values()) < sum(abs(w) for w in light.values()) / 10


def test_few_steps_approach_the_solution(db):
    """Conjugate gradients from zero: more steps, closer to the exact weights."""
    rng = random.Random(8)
    histories = random_world(db, rng)
    eligible = {p for (p,) in db.execute("SELECT post_id FROM feed.posts WHERE NOT is_deleted")}
    want = reference_weights(histories, eligible, settings(db))
    errors = []
    for steps in (1, 3, 100):
        set_(db, "recommendation_regression_steps", steps)
        build(db)
        got = weights(db)
        errors.append(sum(abs(got.get(key, 0) - w) for key, w in want.items()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3 * sum(abs(w) for w in want.values())


def test_incremental_runs_keep_the_regression_weights(db):
    rng = random.Random(2)
    random_world(db, rng, n_posts=15, n_users=20, events=120)
    build(db)
    before = weights(db)
    log(db, 7, 3, minutes_ago=0.5)
    build(db, only_changed=True)
    assert weights(db) == before
    assert 3 not in rec_ids(db, 7)
    assert db.execute("SELECT DISTINCT algorithm FROM feed.recommendations").fetchall() == [("regression",)]


def input_counts(histories, eligible, cfg):
    """How many inputs each target has before the budget (its co-occurring posts, at
    most recommendation_neighbors)."""
    pair_cap = int(cfg["recommendation_pair_history"])
    support = int(cfg["recommendation_min_support"])
    viewers, together = defaultdict(int), defaultdict(int)
    for items in histories.values():
        for i in items[:pair_cap]:
            viewers[i] += 1
    for items in histories.values():
        paired = [i for i in items[:pair_cap] if viewers[i] >= support]
        for i in paired:
            for j in paired:
                if i != j:
                    together[(i, j)] += 1
    counts = defaultdict(int)
    for (_, j), n in together.items():
        if n >= support and j in eligible:
            counts[j] += 1
    return [min(n, int(cfg["recommendation_neighbors"])) for n in counts.values()]


def test_a_budget_cuts_the_inputs_of_the_posts_with_most(db):
    """The systems' entries (sum over targets of their inputs squared) over
    recommendation_regression_budget: every target keeps only its most similar inputs,
    as many as the budget allows; targets with fewer are solved as before."""
    rng = random.Random(11)
    histories = random_world(db, rng)
    eligible = {p for (p,) in db.execute("SELECT post_id FROM feed.posts WHERE NOT is_deleted")}
    cfg = settings(db)
    counts = input_counts(histories, eligible, cfg)
    full = sum(n * n for n in counts)
    budget = full // 3
    cap = max(c for c in range(1, max(counts) + 1) if sum(min(n, c) ** 2 for n in counts) <= budget)
    assert 1 < cap < max(counts)

    build(db)
    run = db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'build_recommendations'").fetchone()[0]
    assert (run["regression_inputs"], run["regression_entries"], run["regression_uncapped_entries"]) == (
        max(counts), full, full)

    set_(db, "recommendation_regression_budget", budget)
    build(db)
    run = db.execute("SELECT last_result FROM feed.job_runs WHERE job = 'build_recommendations'").fetchone()[0]
    assert (run["regression_inputs"], run["regression_entries"], run["regression_uncapped_entries"]) == (
        cap, sum(min(n, cap) ** 2 for n in counts), full)
    want = reference_weights(histories, eligible, cfg, cap=cap)
    got = weights(db)
    assert want and got.keys() == want.keys()
    for key, w in want.items():
        assert got[key] == pytest.approx(w, rel=2e-3, abs=2e-5), key
