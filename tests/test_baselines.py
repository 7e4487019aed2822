"""pgfeed eval --baselines: the strong baselines (measurement only), their tuning and the command."""

from __future__ import annotations

import json
import random
import sys

import pytest
from click.testing import CliRunner

from pgfeed import evaluate as ev
from pgfeed.cli import cli

np = pytest.importorskip("numpy", reason="the 'eval' extra is not installed")
bl = pytest.importorskip("pgfeed.baselines")
pytest.importorskip("implicit", reason="the 'eval' extra is not installed")


def tribes(seed=3, users=40, per_user=9):
    """Users 1-20 like items 1-15, users 21-40 items 16-30, one crossing over each; item 31 nobody rated."""
    rng = random.Random(seed)
    data, ts = [], 880000000
    for u in range(1, users + 1):
        own, other = (range(1, 16), range(16, 31)) if u <= users // 2 else (range(16, 31), range(1, 16))
        for i in rng.sample(own, per_user - 1) + rng.sample(other, 1):
            ts += rng.randint(1, 1000)
            data.append(ev.Rating(u, i, 5, ts))
    return list(range(1, 32)), data


def test_matrix_and_rankings_exclude_training_items_and_break_ties_by_id():
    train = [ev.Rating(1, 2, 5, 0), ev.Rating(1, 3, 5, 0), ev.Rating(2, 3, 5, 0)]
    data = bl.Interactions.build(train, items=[1, 2, 3, 4], users=[3])
    assert data.users == [1, 2, 3] and data.items == [1, 2, 3, 4] and data.matrix.shape == (3, 4)
    assert data.matrix.toarray().tolist() == [[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    popular = bl.fit_most_popular(data)
    # counts: item 3 twice, item 2 once, items 1 and 4 never (tie: lower id first)
    assert data.rankings(popular, [1, 2, 3], k=3) == {1: [1, 4], 2: [2, 1, 4], 3: [3, 2, 1]}


def test_ease_weights_solve_the_constrained_least_squares():
    rng = np.random.default_rng(1)
    X = (rng.random((30, 6)) < 0.4).astype(float)
    G, lam = X.T @ X, 3.0
    B = bl.ease_weights(G, lam)
    assert np.allclose(np.diag(B), 0)
    # stationarity: the gradient (G + λI)B − G vanishes off the diagonal (the diagonal carries the constraint)
    grad = (G + lam * np.eye(6)) @ B - G
    assert np.allclose(grad - np.diag(np.diag(grad)), 0, atol=1e-9)
    # and it beats a perturbed B on the objective
    objective = lambda W: np.sum((X - X @ W) ** 2) + lam * np.sum(W ** 2)  # noqa: E731
    W = B.copy()
    W[0, 1] += 0.05
    assert objective(B) < objective(W)


@pytest.mark.parametrize("baseline", bl.BASELINES, ids=lambda b: b.name)
def test_every_baseline_recommends_within_the_tribe(baseline):
    items, data = tribes()
    split = ev.make_split(data, "random", seed=1)
    params = bl.grid_points(baseline.grid)[0] if baseline.grid else {}
    if baseline.name == "ALS":
        params = {"factors": 4, "regularization": 0.1, "alpha": 4.0}
    matrix = bl.Interactions.build(split.train, items)
    rankings = matrix.rankings(baseline.fit(matrix, **params, seed=1), [1, 30], k=5)
    train_items = {u: {r.item_id for r in split.train if r.user_id == u} for u in (1, 30)}
    for user in (1, 30):
        assert len(rankings[user]) == 5 and not set(rankings[user]) & train_items[user]
    if baseline.name != "MostPop":
        assert all(i <= 15 for i in rankings[1][:3]), rankings[1]
        assert all(16 <= i <= 30 for i in rankings[30][:3]), rankings[30]


def test_tuning_never_reads_the_test_part():
    items, data = tribes()
    split = ev.make_split(data, "time", seed=2)
    baseline = next(b for b in bl.BASELINES if b.name == "EASE")
    grid = {"lam": (0.5, 5, 50)}
    params, validation = bl.tune(baseline, split, items, k=5, grid=grid)
    assert params["lam"] in grid["lam"] and 0 <= validation["precision"] <= 1
    poisoned = ev.Split(split.train, [ev.Rating(1, 31, 5, 0)] * 50, split.seed, split.test_fraction, "time")
    assert bl.tune(baseline, poisoned, items, k=5, grid=grid) == (params, validation)
    # the choice is the best validation score of the grid
    val = ev.validation_split(split)
    scores = {lam: bl.score(baseline, {"lam": lam}, val.train, val.test_items(), items, 5, split.seed)["precision"]
              for lam in grid["lam"]}
    assert scores[params["lam"]] == max(scores.values())


def test_run_scores_the_chosen_parameters_on_the_test_part():
    items, data = tribes()
    split = ev.make_split(data, "random", seed=4)
    grids = {"ItemKNN cosine": {"K": (5, 10)}, "EASE": {"lam": (1, 10)}}
    chosen = [b for b in bl.BASELINES if b.name in ("MostPop", "ItemKNN cosine", "EASE")]
    results = bl.run(split, items, k=5, baselines=chosen, grids=grids)
    assert list(results) == ["MostPop", "ItemKNN cosine", "EASE"]
    assert results["MostPop"]["params"] == {} and "validation" not in results["MostPop"]
    for name in ("ItemKNN cosine", "EASE"):
        m = results[name]
        assert set(m["params"]) == set(grids[name]) and "validation" in m
        again = bl.score(next(b for b in chosen if b.name == name), m["params"], split.train, split.test_items(),
                         items, 5, split.seed)
        assert m["precision"] == pytest.approx(again["precision"]) and m["users"] == len(split.test_items())
        assert m["precision"] > results["MostPop"]["precision"]


def write_events(path, users=40):
    lines = ["user,item,weight,timestamp"]
    for user in range(1, users + 1):
        group = user % 2
        for n in range(10):
            item = 1 + group * 15 + (user * 7 + n * 2) % 15  # 10 distinct items
            lines.append(f"{user},{item},1,{1_600_000_000 + user * 100 + n}")
    path.write_text("\n".join(lines) + "\n")


def test_eval_command_with_baselines_time_split_and_seeds(pg_server, tmp_path, monkeypatch):
    path = tmp_path / "events.csv"
    write_events(path)
    # small grids keep this test quick; the shipped ones are documented in docs/evaluation.md
    small = tuple(bl.Baseline(b.name, b.fit, {k: v[:1] for k, v in b.grid.items()}, b.seeded) for b in bl.BASELINES)
    monkeypatch.setattr(bl, "BASELINES", small)
    monkeypatch.setattr(bl.run, "__defaults__", (ev.DEFAULT_K, small, None))
    result = CliRunner().invoke(cli, ["eval", "--dataset", "csv", str(path), "--k", "5", "--dsn", pg_server.dsn(),
                                      "--split", "time", "--seeds", "2", "--baselines", "--profile", "relevance",
                                      "--profile", "default", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["seeds"] == [42, 43] and len(report["runs"]) == 2
    names = {"pgfeed (relevance)", "pgfeed (default)", "itemknn", "popular", "random",
             "MostPop", "ItemKNN cosine", "ItemKNN BM25", "EASE", "ALS"}
    for run in report["runs"]:
        assert set(run["results"]) == names
        assert run["split"]["method"] == "time" and run["split"]["evaluated_on"] == "test"
        assert run["results"]["MostPop"]["precision"] == pytest.approx(run["results"]["popular"]["precision"])
        assert run["published"] == {}
    summary = report["summary"]
    assert names <= set(summary)
    for name in names:
        s = summary[name]["precision"]
        assert s["min"] <= s["mean"] <= s["max"] and s["sd"] >= 0
    assert summary["pgfeed (relevance)"]["precision"]["mean"] > summary["random"]["precision"]["mean"]


def test_eval_command_says_how_to_get_the_extra(pg_server, tmp_path, monkeypatch):
    path = tmp_path / "events.csv"
    write_events(path, users=4)
    monkeypatch.setitem(sys.modules, "implicit", None)  # as if the extra were not installed
    result = CliRunner().invoke(cli, ["eval", "--dataset", "csv", str(path), "--dsn", pg_server.dsn(), "--baselines"])
    assert result.exit_code == 1
    assert "pip install 'pgfeed[eval]'" in result.output


def test_eval_command_rejects_an_unknown_setting(pg_server, tmp_path):
    path = tmp_path / "events.csv"
    write_events(path, users=4)
    result = CliRunner().invoke(cli, ["eval", "--dataset", "csv", str(path), "--dsn", pg_server.dsn(),
                                      "--set", "no_such_setting=1"])
    assert result.exit_code == 1 and "unknown feed setting" in result.output
