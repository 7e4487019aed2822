"""Offline evaluation: does personalization put what a person engages with next near the top?

The harness loads a MovieLens-format data set (``u.data``, ``u.item``,
``u.genre``; e.g. MovieLens 100K) into a freshly migrated pgfeed database,
holds out part of the ratings, asks a *ranker* for each test user's top k and
scores the answer. Python only loads, splits and counts here; every ranking
comes from SQL.

Protocol (the one the published ML-100K top-N baselines use; see
Ferrari Dacrema et al., RecSys 2019, and the Recommenders.jl README):

* every rating (1 to 5 stars) is a positive: a ``like`` at the rating's
  timestamp; movies become posts (``post_id`` = item id, ``author_id`` = item
  id + ``AUTHOR_OFFSET`` so no user authors a movie, ``category`` = the first
  genre flag set, ``post_type`` = ``'movie'``, ``created_at`` = release date,
  or ``FALLBACK_RELEASE`` when missing);
* split: a random global 80/20 over all ratings, seeded. Exactly: every rating
  gets the key ``md5(f"{seed}:{user}:{item}")`` (hex digest); ratings sorted
  by (key, user, item); the first ``round(test_fraction * N)`` are the test
  set, the rest training. Only the training part is loaded;
* or (``--split time``) per viewer, the latest ``round(test_fraction * n)``
  of their n ratings by time are the test set (ties in time by the seeded
  key): no training rating of a viewer is later than their test ratings;
* hyperparameters (of the baselines in :mod:`pgfeed.baselines`, or feed
  settings being tuned) are chosen on :func:`validation_split`, carved from
  the training part by the same method, never on the test part;
* metrics, for each test user (at least one test rating), then averaged over
  those users; ``ranked`` = the ranker's top k, training items excluded by the
  ranker, ``relevant`` = the user's test items, ``hits`` = |ranked ∩ relevant|:

    P@k    = hits / k
    R@k    = hits / |relevant|
    NDCG@k = DCG / IDCG, binary relevance:
             DCG  = sum over hits at rank r (1-based) of 1 / log2(r + 1)
             IDCG = sum over r = 1 .. min(k, |relevant|) of 1 / log2(r + 1)

A ranker is any callable ``ranker(conn, user_id, k) -> list[int]`` (post ids,
best first). Shipped: :func:`recommendations_ranker` (feed.recommendations
after feed.build_recommendations), :func:`popular_ranker` (most ratings in
training), :func:`random_ranker` (seeded shuffle).

Command line::

    python -m pgfeed.evaluate /path/to/ml-100k [--dsn DSN] [--k 10] [--seed 42] [--split random|time] [--json]

creates a scratch database on the server (DSN, else the embedded server),
migrates it, loads, evaluates every ranker, prints the table and drops the
database (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

AUTHOR_OFFSET = 1_000_000_000
FALLBACK_RELEASE = datetime(1900, 1, 1, tzinfo=timezone.utc)
DEFAULT_SEED = 42
DEFAULT_K = 10
# the lookback that covers the whole log, whenever it was recorded
FULL_LOOKBACK = "100 years"

# Published top-N results on ML-100K (random global 80/20, k = 10): Ferrari Dacrema et al., RecSys 2019; Recommenders.jl
PUBLISHED_ML100K = {
    "MostPopular": {"precision": 0.190, "recall": 0.118},
    "UserKNN": {"precision": 0.291, "recall": 0.180},
    "ItemKNN (BM25)": {"precision": 0.333, "recall": 0.220},
    "BPR-MF": {"precision": 0.346, "recall": 0.232},
    "SLIM ElasticNet": {"precision": 0.363, "recall": 0.239},
    "implicit MF": {"precision": 0.366, "recall": 0.242},
}

Ranker = Callable[[psycopg.Connection, int, int], Sequence[int]]


# ---------------------------------------------------------------------------
# data

@dataclass(frozen=True)
class Item:
    item_id: int
    title: str
    released: datetime
    category: str


@dataclass(frozen=True)
class Rating:
    user_id: int
    item_id: int
    rating: int
    timestamp: int


SPLIT_METHODS = ("random", "time")


@dataclass
class Split:
    train: list[Rating]
    test: list[Rating]
    seed: int
    test_fraction: float
    method: str = "random"

    def test_items(self) -> dict[int, set[int]]:
        items: dict[int, set[int]] = defaultdict(set)
        for r in self.test:
            items[r.user_id].add(r.item_id)
        return dict(items)


def read_genres(path: Path) -> dict[int, str]:
    genres = {}
    for line in (path / "u.genre").read_text(encoding="latin-1").splitlines():
        if line.strip():
            name, index = line.rsplit("|", 1)
            genres[int(index)] = name
    return genres


def read_items(path: Path) -> list[Item]:
    """u.item: Latin-1, '|'-separated: id, title, release date, video date, url, 19 genre flags."""
    genres = read_genres(path)
    items = []
    for line in (path / "u.item").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        flags = fields[5:]
        category = next((genres[i] for i, flag in enumerate(flags) if flag.strip() == "1"), "unknown")
        try:
            released = datetime.strptime(fields[2], "%d-%b-%Y").replace(tzinfo=timezone.utc)
        except ValueError:
            released = FALLBACK_RELEASE
        items.append(Item(int(fields[0]), fields[1], released, category))
    return items


def read_ratings(path: Path) -> list[Rating]:
    """u.data: tab-separated user, item, rating, unix timestamp."""
    ratings = []
    with open(path / "u.data", encoding="latin-1") as handle:
        for line in handle:
            if line.strip():
                user, item, rating, ts = line.split("\t")
                ratings.append(Rating(int(user), int(item), int(rating), int(ts)))
    return ratings


def split_key(seed: int, user_id: int, item_id: int) -> str:
    return hashlib.md5(f"{seed}:{user_id}:{item_id}".encode()).hexdigest()


def split_ratings(ratings: Iterable[Rating], seed: int = DEFAULT_SEED, test_fraction: float = 0.2) -> Split:
    """The seeded random global split described in the module docstring."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    ordered = sorted(ratings, key=lambda r: (split_key(seed, r.user_id, r.item_id), r.user_id, r.item_id))
    cut = round(test_fraction * len(ordered))
    return Split(train=ordered[cut:], test=ordered[:cut], seed=seed, test_fraction=test_fraction)


def split_by_time(ratings: Iterable[Rating], seed: int = DEFAULT_SEED, test_fraction: float = 0.2) -> Split:
    """Per viewer, the latest ``round(test_fraction * n)`` of their n ratings are the test set.

    A viewer's ratings are ordered by (timestamp, seeded key, item); ratings
    with the same timestamp are ordered by the seeded key ``split_key(seed,
    user, item)``, which is all the seed changes. No training rating of a
    viewer is later than any of their test ratings: nothing after a viewer's
    test cut reaches training. (Other viewers' ratings are cut at their own
    time.) A repeat of an item the viewer already has in training is dropped
    from the test set (it cannot be recommended again)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    by_user: dict[int, list[Rating]] = defaultdict(list)
    for r in ratings:
        by_user[r.user_id].append(r)
    train: list[Rating] = []
    test: list[Rating] = []
    for user in sorted(by_user):
        history = sorted(by_user[user], key=lambda r: (r.timestamp, split_key(seed, r.user_id, r.item_id), r.item_id))
        cut = len(history) - round(test_fraction * len(history))
        train.extend(history[:cut])
        before = {r.item_id for r in history[:cut]}
        test.extend(r for r in history[cut:] if r.item_id not in before)
    return Split(train=train, test=test, seed=seed, test_fraction=test_fraction, method="time")


def make_split(ratings: Iterable[Rating], method: str = "random", seed: int = DEFAULT_SEED,
               test_fraction: float = 0.2) -> Split:
    """``random``: :func:`split_ratings`; ``time``: :func:`split_by_time`."""
    if method == "random":
        return split_ratings(ratings, seed, test_fraction)
    if method == "time":
        return split_by_time(ratings, seed, test_fraction)
    raise ValueError(f"unknown split method {method!r} (expected one of {', '.join(SPLIT_METHODS)})")


VALIDATION_SEED_OFFSET = 1_000_003


def validation_split(split: Split) -> Split:
    """A validation split carved from ``split.train`` only, by the same method and
    fraction (seed ``split.seed + VALIDATION_SEED_OFFSET``): its ``train`` is
    the fitting part, its ``test`` the validation part. Hyperparameters are
    chosen on it; the test part of ``split`` is never looked at."""
    return make_split(split.train, split.method, split.seed + VALIDATION_SEED_OFFSET, split.test_fraction)


# ---------------------------------------------------------------------------
# metrics (pure)

def dcg(hits_at: Iterable[int]) -> float:
    """Sum of 1 / log2(rank + 1) over 1-based ranks."""
    return sum(1.0 / math.log2(rank + 1) for rank in hits_at)


def user_metrics(ranked: Sequence[int], relevant: set[int], k: int) -> dict[str, float]:
    """P@k, R@k and NDCG@k (binary relevance) of one user's ranking; see the module docstring."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if not relevant:
        raise ValueError("a test user needs at least one relevant item")
    top = list(dict.fromkeys(ranked))[:k]  # a repeated id counts once
    hit_ranks = [rank for rank, item in enumerate(top, start=1) if item in relevant]
    ideal = dcg(range(1, min(k, len(relevant)) + 1))
    return {
        "precision": len(hit_ranks) / k,
        "recall": len(hit_ranks) / len(relevant),
        "ndcg": dcg(hit_ranks) / ideal,
    }


def mean_metrics(rankings: Mapping[int, Sequence[int]], test_items: Mapping[int, set[int]], k: int) -> dict:
    """Average the per-user metrics over every test user (a missing ranking counts as empty)."""
    totals = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0}
    users = [u for u, items in test_items.items() if items]
    for user in users:
        for name, value in user_metrics(rankings.get(user, []), test_items[user], k).items():
            totals[name] += value
    n = len(users)
    return {"users": n, "k": k, **{name: (value / n if n else 0.0) for name, value in totals.items()}}


# ---------------------------------------------------------------------------
# loading into a database

def _copy(conn: psycopg.Connection, statement: str, rows: Iterable[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def load(conn: psycopg.Connection, items: Sequence[Item], train: Sequence[Rating]) -> dict:
    """Movies into feed.posts, training ratings into feed.interactions as likes (set-based COPY, in
    time order), then the derived state (feed._rebuild_derived_state, when installed)."""
    started = time.perf_counter()
    with conn.transaction():
        _copy(conn, "COPY feed.posts (post_id, author_id, category, post_type, created_at) FROM STDIN",
              ((i.item_id, i.item_id + AUTHOR_OFFSET, i.category, "movie", i.released) for i in items))
        ordered = sorted(train, key=lambda r: (r.timestamp, r.user_id, r.item_id))
        _copy(conn, "COPY feed.interactions (user_id, post_id, action, created_at) FROM STDIN",
              ((r.user_id, r.item_id, "like", datetime.fromtimestamp(r.timestamp, timezone.utc)) for r in ordered))
        derived = conn.execute("SELECT to_regproc('feed._rebuild_derived_state') IS NOT NULL").fetchone()[0]
        if derived:
            conn.execute("SELECT feed._rebuild_derived_state()")
    conn.execute("ANALYZE feed.posts")
    conn.execute("ANALYZE feed.interactions")
    return {"posts": len(items), "interactions": len(train), "derived_state": bool(derived),
            "seconds": round(time.perf_counter() - started, 3)}


# ---------------------------------------------------------------------------
# rankers: (conn, user_id, k) -> post ids, best first

def build_recommendations(conn: psycopg.Connection, lookback: str = FULL_LOOKBACK) -> dict:
    """Run feed.build_recommendations over the whole log; returns rows written and seconds."""
    started = time.perf_counter()
    written = conn.execute("SELECT feed.build_recommendations(%s::interval)", [lookback]).fetchone()[0]
    return {"recommendations": written, "seconds": round(time.perf_counter() - started, 3)}


def recommendations_ranker(conn: psycopg.Connection, user_id: int, k: int) -> list[int]:
    """The viewer's fresh precomputed recommendations (call build_recommendations first)."""
    rows = conn.execute(
        "SELECT r.post_id FROM feed.recommendations r WHERE r.user_id = %s AND r.expires_at > now()"
        " ORDER BY r.score DESC, r.post_id LIMIT %s", [user_id, k]).fetchall()
    return [r[0] for r in rows]


def popular_ranker(conn: psycopg.Connection, user_id: int, k: int) -> list[int]:
    """Most interacted-with posts in the loaded (training) log, without the user's own."""
    rows = conn.execute(
        "SELECT i.post_id FROM feed.interactions i"
        " WHERE i.post_id NOT IN (SELECT o.post_id FROM feed.interactions o WHERE o.user_id = %s)"
        " GROUP BY i.post_id ORDER BY count(*) DESC, i.post_id LIMIT %s", [user_id, k]).fetchall()
    return [r[0] for r in rows]


def make_random_ranker(seed: int = DEFAULT_SEED) -> Ranker:
    """A seeded random order of all posts the user has not interacted with (keyed
    md5('random:{seed}:{user}:{post}'), independent of the split's keys)."""
    def random_ranker(conn: psycopg.Connection, user_id: int, k: int) -> list[int]:
        rows = conn.execute(
            "SELECT p.post_id FROM feed.posts p"
            " WHERE p.post_id NOT IN (SELECT o.post_id FROM feed.interactions o WHERE o.user_id = %s)"
            " ORDER BY md5('random:' || %s || ':' || %s::text || ':' || p.post_id::text), p.post_id LIMIT %s",
            [user_id, str(seed), user_id, k]).fetchall()
        return [r[0] for r in rows]
    return random_ranker


random_ranker = make_random_ranker(DEFAULT_SEED)


def evaluate(ranker: Ranker, conn: psycopg.Connection, test_items: Mapping[int, set[int]],
             k: int = DEFAULT_K) -> dict:
    """Ask ``ranker`` for every test user's top k and average the metrics."""
    started = time.perf_counter()
    rankings = {user: list(ranker(conn, user, k)) for user in sorted(test_items)}
    result = mean_metrics(rankings, test_items, k)
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


# ---------------------------------------------------------------------------
# the whole run

@dataclass
class Report:
    dataset: str
    k: int
    seed: int
    load: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    published: dict = field(default_factory=lambda: PUBLISHED_ML100K)
    split: dict = field(default_factory=lambda: {"method": "random", "evaluated_on": "test"})

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "k": self.k, "seed": self.seed, "split": self.split, "load": self.load,
                "build": self.build, "results": self.results, "published": self.published}


METRICS = ("precision", "recall", "ndcg")


def spread(values: Sequence[float]) -> dict:
    """mean, sample standard deviation (0 for one value), min and max."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values)}


@dataclass
class MultiReport:
    """One :class:`Report` per seed, and per ranker and metric the mean and spread over the seeds."""

    reports: list[Report]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.reports]

    def summary(self) -> dict:
        out = {}
        for name in self.reports[0].results:
            runs = [r.results[name] for r in self.reports if name in r.results]
            out[name] = {m: spread([run[m] for run in runs]) for m in METRICS}
        out_build = [r.build.get("seconds") for r in self.reports if r.build.get("seconds") is not None]
        if out_build:
            out["build_recommendations seconds"] = spread(out_build)
        return out

    def as_dict(self) -> dict:
        return {"seeds": self.seeds, "summary": self.summary(), "runs": [r.as_dict() for r in self.reports]}


def default_rankers(seed: int = DEFAULT_SEED) -> dict[str, Ranker]:
    return {"itemknn": recommendations_ranker, "popular": popular_ranker, "random": make_random_ranker(seed)}


def evaluate_loaded(conn: psycopg.Connection, split: Split, rankers: Mapping[str, Ranker],
                    k: int = DEFAULT_K, report: Report | None = None) -> Report:
    """Build recommendations in a loaded database and evaluate every ranker."""
    report = report or Report(dataset="", k=k, seed=split.seed)
    report.build = build_recommendations(conn)
    test_items = split.test_items()
    for name, ranker in rankers.items():
        report.results[name] = evaluate(ranker, conn, test_items, k)
    return report


@contextmanager
def scratch_database(server_dsn: str, settings: Mapping[str, str] | None = None, keep: bool = False):
    """A new database next to ``server_dsn``, migrated, with ``settings`` applied;
    yields its DSN and drops it afterwards unless ``keep``."""
    from . import install

    name = f"pgfeed_eval_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server_dsn)
    params["dbname"] = name
    dsn = make_conninfo(**params)
    try:
        install.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            for setting, value in (settings or {}).items():
                updated = conn.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, setting])
                if updated.rowcount != 1:
                    raise ValueError(f"unknown feed setting {setting!r}")
        yield dsn
    finally:
        if not keep:
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(path: Path, server_dsn: str, k: int = DEFAULT_K, seed: int = DEFAULT_SEED,
        test_fraction: float = 0.2, rankers: Mapping[str, Ranker] | None = None,
        settings: Mapping[str, str] | None = None, keep: bool = False, split_method: str = "random") -> Report:
    """Create a scratch database next to ``server_dsn``, migrate, load ``path``, evaluate, drop it."""
    items, ratings = read_items(path), read_ratings(path)
    split = make_split(ratings, split_method, seed, test_fraction)
    with scratch_database(server_dsn, settings, keep) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        report = Report(dataset=str(path), k=k, seed=seed)
        report.split = {"method": split_method, "test_fraction": test_fraction, "evaluated_on": "test"}
        report.load = load(conn, items, split.train)
        evaluate_loaded(conn, split, rankers or default_rankers(seed), k, report)
        if keep:
            report.load["database"] = dsn
        return report


DEFINITIONS = ("per test user, ranked = the top k (training items excluded), relevant = the user's held-out items, "
               "hits = |ranked ∩ relevant|; P@k = hits / k; R@k = hits / |relevant|; NDCG@k = DCG / IDCG with "
               "binary relevance, DCG = Σ over hits at rank r of 1 / log2(r + 1), IDCG the same over ranks "
               "1..min(k, |relevant|); each averaged over the test users")


def _params(m: Mapping) -> str:
    params = m.get("params")
    return ", ".join(f"{k}={v}" for k, v in params.items()) if params else ""


def format_report(report: Report) -> str:
    out = io.StringIO()
    split = report.split or {}
    out.write(f"{report.dataset}: k = {report.k}, split {split.get('method', 'random')} seed {report.seed}, "
              f"evaluated on {split.get('evaluated_on', 'test')}, "
              f"{report.load.get('interactions')} training ratings, "
              f"build_recommendations {report.build.get('seconds')} s\n")
    out.write(f"{'ranker':<22} {'P@k':>7} {'R@k':>7} {'NDCG@k':>7} {'users':>6}  chosen on validation\n")
    for name, m in report.results.items():
        out.write(f"{name:<22} {m['precision']:7.4f} {m['recall']:7.4f} {m['ndcg']:7.4f} {m['users']:6d}  "
                  f"{_params(m)}\n".rstrip() + "\n")
    if report.published:
        out.write("published (ML-100K, random 80/20, k = 10; other runs, other tuning):\n")
        for name, m in report.published.items():
            out.write(f"{name:<22} {m['precision']:7.3f} {m['recall']:7.3f}\n")
    out.write(f"metrics: {DEFINITIONS}\n")
    return out.getvalue()


def format_multi_report(multi: MultiReport) -> str:
    out = io.StringIO()
    first = multi.reports[0]
    split = first.split or {}
    out.write(f"{first.dataset}: k = {first.k}, split {split.get('method', 'random')}, "
              f"evaluated on {split.get('evaluated_on', 'test')}, seeds {', '.join(map(str, multi.seeds))}: "
              f"mean ± sample sd [min, max]\n")
    out.write(f"{'ranker':<22} {'P@k':>24} {'R@k':>24} {'NDCG@k':>24}\n")
    for name, metrics in multi.summary().items():
        if name not in first.results:
            continue
        cells = [f"{s['mean']:.4f}±{s['sd']:.4f} [{s['min']:.3f},{s['max']:.3f}]" for s in
                 (metrics[m] for m in METRICS)]
        out.write(f"{name:<22} {cells[0]:>24} {cells[1]:>24} {cells[2]:>24}\n")
    build = multi.summary().get("build_recommendations seconds")
    if build:
        out.write(f"build_recommendations: {build['mean']:.1f} s on average ({build['min']:.1f} to {build['max']:.1f})\n")
    for report in multi.reports:
        chosen = "; ".join(f"{name}: {_params(m)}" for name, m in report.results.items() if m.get("params"))
        if chosen:
            out.write(f"seed {report.seed}, chosen on validation: {chosen}\n")
    out.write(f"metrics: {DEFINITIONS}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgfeed.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="directory with u.data, u.item, u.genre (e.g. ml-100k)")
    parser.add_argument("--dsn", help="server to create the scratch database on (default: the embedded server)")
    parser.add_argument("--data-dir", type=Path, help="data directory of the embedded server")
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--split", choices=SPLIT_METHODS, default="random")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a feed setting before building (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    from . import database

    server_dsn = database.resolve_dsn(args.dsn, args.data_dir)
    settings = dict(item.split("=", 1) for item in args.set)
    report = run(args.path, server_dsn, k=args.k, seed=args.seed, test_fraction=args.test_fraction,
                 settings=settings, keep=args.keep, split_method=args.split)
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_report(report), end="" if not args.json else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
