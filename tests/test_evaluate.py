"""The offline evaluation harness: metrics, split, loading, and a tiny end-to-end run."""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime, timezone

import psycopg
import pytest

from pgfeed import evaluate as ev


# ---------------------------------------------------------------------------
# metrics on hand-made rankings

def test_user_metrics_by_hand():
    # hits at ranks 2 and 4; three relevant items, one never ranked
    m = ev.user_metrics([1, 2, 3, 4], {2, 4, 9}, k=4)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)      # min(k, |relevant|) = 3 ideal hits
    assert m["ndcg"] == pytest.approx(dcg / idcg)


def test_user_metrics_edge_cases():
    # a short ranking still divides precision by k
    assert ev.user_metrics([5], {5}, k=10) == pytest.approx({"precision": 0.1, "recall": 1.0, "ndcg": 1.0})
    # only the top k count, and a repeated id counts once
    assert ev.user_metrics([1, 1, 2, 3], {3}, k=2) == {"precision": 0.0, "recall": 0.0, "ndcg": 0.0}
    m = ev.user_metrics([1, 1, 2, 3], {2}, k=2)
    assert m["precision"] == pytest.approx(0.5) and m["ndcg"] == pytest.approx(1 / math.log2(3))
    assert ev.user_metrics([], {1, 2}, k=3) == {"precision": 0.0, "recall": 0.0, "ndcg": 0.0}
    # more relevant items than k: the ideal is k hits
    m = ev.user_metrics([1, 2], {1, 2, 3, 4, 5}, k=2)
    assert m == pytest.approx({"precision": 1.0, "recall": 0.4, "ndcg": 1.0})
    with pytest.raises(ValueError):
        ev.user_metrics([1], set(), k=1)
    with pytest.raises(ValueError):
        ev.user_metrics([1], {1}, k=0)


def test_mean_metrics_averages_over_test_users():
    test = {1: {10, 11}, 2: {20}, 3: {30}}
    rankings = {1: [10, 99], 2: [98, 20]}               # user 3 got nothing
    m = ev.mean_metrics(rankings, test, k=2)
    assert m["users"] == 3 and m["k"] == 2
    assert m["precision"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert m["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    ndcg_1 = 1 / (1 + 1 / math.log2(3))
    ndcg_2 = (1 / math.log2(3)) / 1
    assert m["ndcg"] == pytest.approx((ndcg_1 + ndcg_2 + 0) / 3)


# ---------------------------------------------------------------------------
# split

def ratings(n_users=30, n_items=40, per_user=10, seed=0):
    rng = random.Random(seed)
    out = []
    for u in range(1, n_users + 1):
        for i in rng.sample(range(1, n_items + 1), per_user):
            out.append(ev.Rating(u, i, rng.randint(1, 5), 880000000 + rng.randint(0, 10 ** 7)))
    return out


def test_split_is_the_documented_seeded_hash_order():
    data = ratings()
    split = ev.split_ratings(data, seed=7)
    assert len(split.test) == round(0.2 * len(data)) == 60
    assert len(split.train) == len(data) - 60
    assert {(r.user_id, r.item_id) for r in split.test}.isdisjoint((r.user_id, r.item_id) for r in split.train)
    keys = sorted(hashlib.md5(f"7:{r.user_id}:{r.item_id}".encode()).hexdigest() for r in data)
    assert sorted(ev.split_key(7, r.user_id, r.item_id) for r in split.test) == keys[:60]
    # same seed, same split, whatever the input order; another seed, another split
    assert ev.split_ratings(list(reversed(data)), seed=7).test == split.test
    assert ev.split_ratings(data, seed=8).test != split.test
    assert set(split.test_items()) == {r.user_id for r in split.test}
    with pytest.raises(ValueError):
        ev.split_ratings(data, test_fraction=1.0)


# ---------------------------------------------------------------------------
# reading MovieLens files

GENRES = "unknown|0\nAction|1\nComedy|2\n\n"


def write_dataset(path, items, data):
    path.mkdir(parents=True, exist_ok=True)
    (path / "u.genre").write_text(GENRES, encoding="latin-1")
    (path / "u.item").write_text("".join(
        f"{i}|{title}|{date}||http://example.invalid/{i}|{'|'.join(flags)}\n" for i, title, date, flags in items),
        encoding="latin-1")
    (path / "u.data").write_text("".join(f"{r.user_id}\t{r.item_id}\t{r.rating}\t{r.timestamp}\n" for r in data),
                                 encoding="latin-1")


def test_read_items_and_ratings(tmp_path):
    items = [(1, "Amélie (2001)", "01-Jan-2001", ["0", "0", "1"]),
             (2, "Heat (1995)", "15-Dec-1995", ["0", "1", "1"]),
             (3, "unknown", "", ["0", "0", "0"])]
    data = [ev.Rating(1, 1, 5, 881250949), ev.Rating(2, 3, 1, 891717742)]
    write_dataset(tmp_path, items, data)
    got = ev.read_items(tmp_path)
    assert [(i.item_id, i.title, i.category) for i in got] == [
        (1, "Amélie (2001)", "Comedy"), (2, "Heat (1995)", "Action"), (3, "unknown", "unknown")]
    assert got[1].released == datetime(1995, 12, 15, tzinfo=timezone.utc)
    assert got[2].released == ev.FALLBACK_RELEASE
    assert ev.read_ratings(tmp_path) == data


# ---------------------------------------------------------------------------
# loading and the rankers, on a small structured world

def two_tribes(seed=3):
    """Users 1-20 like items 1-15, users 21-40 items 16-30, with a little crossing over."""
    rng = random.Random(seed)
    items = [(i, f"Movie {i}", "01-Jan-1996", ["0", "1" if i <= 15 else "0", "0" if i <= 15 else "1"])
             for i in range(1, 31)]
    data, ts = [], 880000000
    for u in range(1, 41):
        own = range(1, 16) if u <= 20 else range(16, 31)
        other = range(16, 31) if u <= 20 else range(1, 16)
        for i in rng.sample(own, 8) + rng.sample(other, 1):
            ts += rng.randint(1, 1000)
            data.append(ev.Rating(u, i, rng.randint(1, 5), ts))
    return items, data


def test_load_then_rank(db, tmp_path):
    items, data = two_tribes()
    write_dataset(tmp_path, items, data)
    split = ev.split_ratings(ev.read_ratings(tmp_path), seed=1)
    loaded = ev.load(db, ev.read_items(tmp_path), split.train)
    assert loaded["posts"] == 30 and loaded["interactions"] == len(split.train)
    assert db.execute("SELECT count(*), min(author_id) FROM feed.posts").fetchone() == (30, 1 + ev.AUTHOR_OFFSET)
    assert db.execute("SELECT category, post_type FROM feed.posts WHERE post_id = 20").fetchone() == ("Comedy", "movie")
    assert db.execute("SELECT count(*) FROM feed.interactions WHERE action = 'like'").fetchone()[0] == len(split.train)
    first = min(split.train, key=lambda r: (r.timestamp, r.user_id, r.item_id))
    assert db.execute("SELECT user_id, post_id FROM feed.interactions ORDER BY interaction_id LIMIT 1").fetchone() \
        == (first.user_id, first.item_id)

    train_items = {}
    for r in split.train:
        train_items.setdefault(r.user_id, set()).add(r.item_id)
    counts = {}
    for r in split.train:
        counts[r.item_id] = counts.get(r.item_id, 0) + 1
    want = sorted((i for i in counts if i not in train_items[1]), key=lambda i: (-counts[i], i))[:5]
    assert ev.popular_ranker(db, 1, 5) == want

    ranked = ev.make_random_ranker(5)(db, 1, 10)
    assert len(ranked) == 10 and not set(ranked) & train_items[1]
    assert ranked == ev.make_random_ranker(5)(db, 1, 10)
    assert ranked != ev.make_random_ranker(6)(db, 1, 10)

    ev.build_recommendations(db)
    recs = ev.recommendations_ranker(db, 1, 10)
    assert recs and not set(recs) & train_items[1]
    # a tribe member is recommended the tribe's films first
    assert all(i <= 15 for i in recs[:3])


def test_evaluate_takes_any_ranker(db, tmp_path):
    items, data = two_tribes()
    split = ev.split_ratings(data, seed=2)
    test = split.test_items()

    def oracle(conn, user_id, k):
        return sorted(test[user_id])[:k]

    m = ev.evaluate(oracle, db, test, k=3)
    assert m["precision"] == pytest.approx(sum(min(len(v), 3) / 3 for v in test.values()) / len(test))
    assert m["recall"] == pytest.approx(sum(min(len(v), 3) / len(v) for v in test.values()) / len(test))
    assert m["ndcg"] == pytest.approx(1.0)
    assert ev.evaluate(lambda conn, u, k: [], db, test, k=3)["precision"] == 0


def test_end_to_end_on_a_scratch_database(pg_server, tmp_path):
    items, data = two_tribes()
    write_dataset(tmp_path / "tiny", items, data)
    report = ev.run(tmp_path / "tiny", pg_server.dsn(), k=5, seed=4)
    result = report.as_dict()
    assert set(result["results"]) == {"itemknn", "popular", "random"}
    for metrics in result["results"].values():
        assert {"precision", "recall", "ndcg", "users", "k"} <= metrics.keys()
        assert metrics["k"] == 5 and metrics["users"] == len({r.user_id for r in ev.split_ratings(data, 4).test})
        assert 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1 and 0 <= metrics["ndcg"] <= 1
    assert result["results"]["itemknn"]["precision"] > result["results"]["random"]["precision"]
    assert result["build"]["recommendations"] > 0
    assert result["published"]["MostPopular"] == {"precision": 0.190, "recall": 0.118}
    assert "itemknn" in ev.format_report(report)
    # the scratch database is gone
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgfeed_eval_%'").fetchone()[0] == 0


# ---------------------------------------------------------------------------
# the time split, the validation split, the spread over seeds

def test_time_split_holds_out_each_viewers_latest_fifth():
    data = ratings(per_user=12)
    # ties in time: user 1 rates items at only two timestamps
    data = [ev.Rating(r.user_id, r.item_id, r.rating, 880000000 + (r.item_id % 2)) if r.user_id == 1 else r
            for r in data]
    split = ev.split_by_time(data, seed=3)
    assert split.method == "time" and ev.make_split(data, "time", 3).test == split.test
    by_user = {}
    for r in data:
        by_user.setdefault(r.user_id, []).append(r)
    train_by, test_by = {}, {}
    for r in split.train:
        train_by.setdefault(r.user_id, []).append(r)
    for r in split.test:
        test_by.setdefault(r.user_id, []).append(r)
    assert sorted(split.train + split.test, key=lambda r: (r.user_id, r.item_id)) == \
        sorted(data, key=lambda r: (r.user_id, r.item_id))
    for user, history in by_user.items():
        assert len(test_by[user]) == round(0.2 * len(history)) == 2
        # nothing after the viewer's test cut reaches training
        assert max(r.timestamp for r in train_by[user]) <= min(r.timestamp for r in test_by[user])
        latest = sorted(history, key=lambda r: r.timestamp)[-2:]
        if len({r.timestamp for r in history}) == len(history):
            assert set(test_by[user]) == set(latest)
    # the seed only orders ratings of the same time: user 1's test set changes with it, the others' do not
    other = ev.split_by_time(data, seed=4)
    assert {r for r in other.test if r.user_id != 1} == {r for r in split.test if r.user_id != 1}
    assert any({r for r in ev.split_by_time(data, seed=s).test if r.user_id == 1}
               != {r for r in split.test if r.user_id == 1} for s in range(5, 15))
    with pytest.raises(ValueError):
        ev.make_split(data, "by-magic")
    # a repeat of an item already in training is not a test item
    repeat = [ev.Rating(9, i, 5, 100 + i) for i in range(1, 9)] + [ev.Rating(9, 1, 5, 200), ev.Rating(9, 20, 5, 201)]
    cut = ev.split_by_time(repeat, seed=1)
    assert [(r.item_id, r.timestamp) for r in cut.test] == [(20, 201)] and len(cut.train) == 8


@pytest.mark.parametrize("method", ["random", "time"])
def test_validation_split_is_carved_from_training_only(method):
    data = ratings(per_user=15)
    split = ev.make_split(data, method, seed=5)
    validation = ev.validation_split(split)
    assert validation.method == method
    key = lambda r: (r.user_id, r.item_id)  # noqa: E731
    assert sorted(validation.train + validation.test, key=key) == sorted(split.train, key=key)
    assert not {key(r) for r in validation.test} & {key(r) for r in split.test}
    assert 0.15 * len(split.train) <= len(validation.test) <= 0.25 * len(split.train)
    # the test part plays no part in it
    assert ev.validation_split(ev.Split(split.train, [], split.seed, split.test_fraction, method)).test == validation.test


def test_spread_and_the_multi_seed_summary():
    s = ev.spread([0.3, 0.4, 0.5])
    assert s == pytest.approx({"mean": 0.4, "sd": 0.1, "min": 0.3, "max": 0.5})
    assert ev.spread([0.25])["sd"] == 0
    reports = []
    for seed, p in ((1, 0.2), (2, 0.4)):
        r = ev.Report(dataset="x", k=10, seed=seed, build={"seconds": seed})
        r.results["a"] = {"precision": p, "recall": p / 2, "ndcg": p, "users": 3, "k": 10}
        reports.append(r)
    multi = ev.MultiReport(reports)
    summary = multi.as_dict()["summary"]
    assert multi.seeds == [1, 2]
    assert summary["a"]["precision"]["mean"] == pytest.approx(0.3)
    assert summary["a"]["recall"]["max"] == pytest.approx(0.2)
    assert summary["build_recommendations seconds"]["mean"] == pytest.approx(1.5)
    text = ev.format_multi_report(multi)
    assert "0.3000±0.1414" in text and "P@k = hits / k" in text
