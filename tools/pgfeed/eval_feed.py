"""`pgfeed eval`: the offline evaluation of the real feed.

The harness (split, metrics, baselines) is :mod:`pgfeed.evaluate`; this module
loads a data set through the real import path (``pgfeed import``: COPY,
validation, the rebuild of derived state), and ranks with
``feed.get_personalized_feed`` itself. The evaluation database sets the
cooldown to a century, so every training interaction counts as seen and is
excluded from the feed (the protocol's "training items excluded"), and nothing
else is.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import psycopg
from psycopg.types.json import Jsonb

from . import evaluate, importer

EVALUATION_SETTINGS = {"cooldown": "100 years"}
CSV_COLUMNS = ("user", "item", "rating", "timestamp")


def feed_ranker(profile: str) -> evaluate.Ranker:
    """A ranker asking the real feed for the first page of a new session."""

    def rank(conn: psycopg.Connection, user_id: int, k: int) -> list[int]:
        rows = conn.execute("SELECT post_id FROM feed.get_personalized_feed(%s, %s, NULL, %s)",
                            [user_id, k, Jsonb({"profile": profile})]).fetchall()
        return [r[0] for r in rows]

    rank.__name__ = f"feed_{profile}"
    return rank


def read_csv_dataset(path: Path) -> tuple[list[evaluate.Item], list[evaluate.Rating]]:
    """A generic event file: a header naming user, item, rating (or weight) and
    timestamp (unix seconds). Every row is a positive interaction; items
    become posts of category 'item'."""
    ratings = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in reader.fieldnames or []]
        reader.fieldnames = header
        score = "rating" if "rating" in header else "weight"
        missing = [c for c in ("user", "item", score, "timestamp") if c not in header]
        if missing:
            raise ValueError(f"{path}: the header lacks {', '.join(missing)} (expected user,item,rating,timestamp)")
        for line, row in enumerate(reader, start=2):
            try:
                ratings.append(evaluate.Rating(int(row["user"]), int(row["item"]), int(float(row[score])),
                                               int(float(row["timestamp"]))))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
    items = [evaluate.Item(item_id, str(item_id), evaluate.FALLBACK_RELEASE, "item")
             for item_id in sorted({r.item_id for r in ratings})]
    return items, ratings


def load_through_import(dsn: str, items, train) -> dict:
    """Posts, then interactions (as likes at their timestamps), through `pgfeed import`."""
    with tempfile.TemporaryDirectory(prefix="pgfeed-eval-") as tmp:
        posts_csv, interactions_csv = Path(tmp) / "posts.csv", Path(tmp) / "interactions.csv"
        with open(posts_csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["post_id", "author_id", "category", "post_type", "created_at"])
            for item in items:
                writer.writerow([item.item_id, item.item_id + evaluate.AUTHOR_OFFSET, item.category, "movie",
                                 item.released.isoformat()])
        with open(interactions_csv, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["user_id", "post_id", "action", "created_at"])
            for r in sorted(train, key=lambda r: (r.timestamp, r.user_id, r.item_id)):
                writer.writerow([r.user_id, r.item_id, "like",
                                 datetime.fromtimestamp(r.timestamp, timezone.utc).isoformat()])
        posts = importer.import_csv(dsn, "posts", posts_csv)
        interactions = importer.import_csv(dsn, "interactions", interactions_csv)
    return {"posts": len(items), "interactions": len(train), "import": {"posts": posts, "interactions": interactions}}


def read_dataset(path: Path, dataset: str):
    if dataset == "csv":
        return read_csv_dataset(path)
    return evaluate.read_items(path), evaluate.read_ratings(path)


def run(path: Path, server_dsn: str, *, dataset: str = "ml100k", k: int = evaluate.DEFAULT_K,
        seed: int = evaluate.DEFAULT_SEED, profile: str | Sequence[str] = "relevance", keep: bool = False,
        split: str = "random", baselines: bool = False, validation: bool = False,
        settings: Mapping[str, str] | None = None, data=None) -> evaluate.Report:
    """Scratch database, migrate, import the training part, build, evaluate the feed and the baselines.

    ``profile``: one profile or several (each is a ranker ``pgfeed (<profile>)``).
    ``split``: ``random`` or ``time`` (:func:`pgfeed.evaluate.make_split`).
    ``baselines``: also the strong baselines of :mod:`pgfeed.baselines` (the ``eval`` extra),
    tuned on a validation split of the training part.
    ``validation``: evaluate on the validation split carved from the training part instead
    of the test split (the test part is then not loaded at all): the figures to tune on.
    ``settings``: feed settings applied before the build (on top of the evaluation's own)."""
    items, ratings = data if data is not None else read_dataset(path, dataset)
    the_split = evaluate.make_split(ratings, split, seed)
    if validation:
        the_split = evaluate.validation_split(the_split)
    if baselines:
        from . import baselines as baselines_module

        baselines_module.require()  # before any work: say how to get the extra
    profiles = [profile] if isinstance(profile, str) else list(profile)
    with evaluate.scratch_database(server_dsn, {**EVALUATION_SETTINGS, **(settings or {})}, keep) as dsn:
        report = evaluate.Report(dataset=f"{dataset}:{path}", k=k, seed=seed)
        report.split = {"method": split, "test_fraction": the_split.test_fraction,
                        "evaluated_on": "validation" if validation else "test",
                        "train": len(the_split.train), "test": len(the_split.test)}
        if settings:
            report.split["settings"] = dict(settings)
        report.load = load_through_import(dsn, items, the_split.train)
        rankers = {f"pgfeed ({name})": feed_ranker(name) for name in profiles}
        rankers.update(evaluate.default_rankers(seed))
        with psycopg.connect(dsn, autocommit=True) as conn:
            evaluate.evaluate_loaded(conn, the_split, rankers, k, report)
        if baselines:
            report.results.update(baselines_module.run(the_split, [i.item_id for i in items], k))
        if dataset != "ml100k" or split != "random":
            report.published = {}
        if keep:
            report.load["database"] = dsn
        return report


def run_seeds(path: Path, server_dsn: str, seeds: Sequence[int], **options) -> evaluate.MultiReport:
    """:func:`run` once per seed (a fresh scratch database each), and the mean and spread."""
    dataset = options.get("dataset", "ml100k")
    data = read_dataset(path, dataset)
    reports = [run(path, server_dsn, seed=seed, data=data, **options) for seed in seeds]
    return evaluate.MultiReport(reports)
