"""Strong baselines for ``pgfeed eval --baselines``: measurement only.

Nothing here ever ranks a feed. These models run in Python (numpy, scipy and
the ``implicit`` package, the optional extra ``pip install 'pgfeed[eval]'``)
on exactly the split the feed is evaluated on, so pgfeed's figures sit beside
figures computed the same run, on the same training part, against the same
test part, with the same metrics (:mod:`pgfeed.evaluate`).

Every model ranks the whole catalogue (every item of the data set) for a user
and excludes the user's training items:

* ``MostPop``: items by training count (ties by item id);
* ``ItemKNN cosine``: ``implicit.nearest_neighbours.CosineRecommender``,
  cosine between item columns of the binary user x item matrix, the top K
  neighbours per item kept; a user's score for j = sum of sim(i, j) over
  their training items i;
* ``ItemKNN BM25``: the same with the BM25 weighting of ``implicit``
  (``BM25Recommender``, parameters K, K1, B);
* ``EASE``: Steck 2019, closed form: P = (XᵀX + λI)⁻¹, B = I − P·diag(1/diag P),
  scores = X·B (numpy, dense items x items);
* ``ALS``: implicit-feedback alternating least squares (Hu, Koren, Volinsky
  2008), ``implicit.als.AlternatingLeastSquares`` (confidence 1 + α·x,
  factors, regularization, 15 iterations), seeded.

Hyperparameters: every model with any is fitted on the fitting part of a
validation split carved from the training part only
(:func:`pgfeed.evaluate.validation_split`), each grid point is scored by P@k
on the validation part (ties by NDCG@k), and the best is refitted on the whole
training part and scored once on the test part. The test part never
influences a choice.

Dense item x item matrices limit EASE to catalogues of some ten thousand
items; that is what these baselines are for (ML-100K has 1,682).
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from . import evaluate

EXTRA_HINT = ("the baselines need the optional extra 'eval' (numpy, scipy, implicit): "
              "pip install 'pgfeed[eval]'  (from a checkout: pip install '.[eval]')")


class BaselinesUnavailable(RuntimeError):
    """The optional extra is not installed."""


def require():
    """Import numpy, scipy.sparse and implicit, or raise BaselinesUnavailable saying how to get them."""
    try:
        import numpy as np
        import scipy.sparse as sp
        import implicit  # noqa: F401
        from implicit.als import AlternatingLeastSquares  # noqa: F401
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender  # noqa: F401
    except ImportError as exc:
        raise BaselinesUnavailable(f"{EXTRA_HINT} ({exc})") from exc
    return np, sp


# ---------------------------------------------------------------------------
# the user x item matrix

@dataclass
class Interactions:
    """Binary user x item matrix of a training part; rows = users, columns = the catalogue."""

    users: list[int]
    items: list[int]
    matrix: object  # scipy.sparse.csr_matrix, float32

    @classmethod
    def build(cls, train: Sequence[evaluate.Rating], items: Sequence[int], users: Sequence[int] = ()):
        np, sp = require()
        all_users = sorted({r.user_id for r in train} | set(users))
        all_items = sorted(set(items) | {r.item_id for r in train})
        u_index = {u: n for n, u in enumerate(all_users)}
        i_index = {i: n for n, i in enumerate(all_items)}
        pairs = sorted({(u_index[r.user_id], i_index[r.item_id]) for r in train})
        rows = np.array([p[0] for p in pairs], dtype=np.int32)
        cols = np.array([p[1] for p in pairs], dtype=np.int32)
        data = np.ones(len(pairs), dtype=np.float32)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(all_users), len(all_items)), dtype=np.float32)
        return cls(all_users, all_items, matrix)

    def rankings(self, scores_for: Callable, test_users: Sequence[int], k: int, batch: int = 1024) -> dict:
        """Top k item ids per test user from ``scores_for(row_indices) -> dense scores``,
        training items excluded, ties by item id."""
        np, _ = require()
        u_index = {u: n for n, u in enumerate(self.users)}
        rows = [u_index[u] for u in test_users if u in u_index]
        out: dict[int, list[int]] = {}
        items = np.asarray(self.items)
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            scores = np.asarray(scores_for(np.asarray(chunk)), dtype=np.float64)
            seen = self.matrix[chunk]
            scores[seen.nonzero()] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            for n, row in enumerate(chunk):
                picked = order[n][np.isfinite(scores[n, order[n]])]
                out[self.users[row]] = items[picked].tolist()
        return out


# ---------------------------------------------------------------------------
# models: fit(Interactions, **params) -> scores_for(rows)

def fit_most_popular(data: Interactions, **_):
    np, _ = require()
    counts = np.asarray(data.matrix.sum(axis=0)).ravel()
    return lambda rows: np.broadcast_to(counts, (len(rows), counts.size)).copy()


def _item_item(model, data: Interactions):
    with warnings.catch_warnings():  # implicit converts its own BM25-weighted COO matrix, and says so
        warnings.simplefilter("ignore")
        model.fit(data.matrix, show_progress=False)
    similarity = model.similarity  # items x items, row i = neighbours of i

    def scores_for(rows):
        return (data.matrix[rows] @ similarity).toarray()

    return scores_for


def fit_itemknn_cosine(data: Interactions, K: int = 100, **_):
    require()
    from implicit.nearest_neighbours import CosineRecommender

    return _item_item(CosineRecommender(K=K, num_threads=1), data)


def fit_itemknn_bm25(data: Interactions, K: int = 100, K1: float = 1.2, B: float = 0.75, **_):
    require()
    from implicit.nearest_neighbours import BM25Recommender

    return _item_item(BM25Recommender(K=K, K1=K1, B=B, num_threads=1), data)


def ease_weights(gram, lam: float):
    """EASE's item x item weights from the Gram matrix XᵀX: the B minimizing
    ||X − XB||² + λ||B||² with diag(B) = 0, i.e. B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹."""
    np, _ = require()
    G = np.array(gram, dtype=np.float64)
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    return B


def fit_ease(data: Interactions, lam: float = 500.0, **_):
    np, _ = require()
    X = data.matrix
    B = ease_weights((X.T @ X).toarray(), lam)

    def scores_for(rows):
        return np.asarray(X[rows] @ B)

    return scores_for


def fit_als(data: Interactions, factors: int = 64, regularization: float = 0.05, alpha: float = 1.0,
            iterations: int = 15, seed: int = 0, **_):
    np, _ = require()
    from implicit.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                        iterations=iterations, random_state=seed, num_threads=1,
                                        calculate_training_loss=False)
        model.fit(data.matrix, show_progress=False)
    user_factors = np.asarray(model.user_factors)
    item_factors = np.asarray(model.item_factors)
    return lambda rows: user_factors[rows] @ item_factors.T


@dataclass(frozen=True)
class Baseline:
    name: str
    fit: Callable
    grid: Mapping[str, Sequence]
    seeded: bool = False


BASELINES: tuple[Baseline, ...] = (
    Baseline("MostPop", fit_most_popular, {}),
    Baseline("ItemKNN cosine", fit_itemknn_cosine, {"K": (20, 50, 100, 200, 400)}),
    Baseline("ItemKNN BM25", fit_itemknn_bm25, {"K": (20, 50, 100, 200, 400), "K1": (0.6, 1.2),
                                               "B": (0.25, 0.75, 1.0)}),
    Baseline("EASE", fit_ease, {"lam": (50, 100, 200, 300, 500, 800, 1200, 2000, 3000)}),
    Baseline("ALS", fit_als, {"factors": (32, 64, 128), "regularization": (0.5, 2.0, 8.0, 32.0),
                              "alpha": (1.0, 4.0)}, seeded=True),
)


def grid_points(grid: Mapping[str, Sequence]) -> list[dict]:
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def score(baseline: Baseline, params: dict, train: Sequence[evaluate.Rating], test_items: Mapping[int, set],
          items: Sequence[int], k: int, seed: int) -> dict:
    data = Interactions.build(train, items, users=list(test_items))
    extra = {"seed": seed} if baseline.seeded else {}
    scores_for = baseline.fit(data, **params, **extra)
    rankings = data.rankings(scores_for, sorted(test_items), k)
    return evaluate.mean_metrics(rankings, test_items, k)


def tune(baseline: Baseline, split: evaluate.Split, items: Sequence[int], k: int,
         grid: Mapping[str, Sequence] | None = None) -> tuple[dict, dict]:
    """The grid point with the best validation P@k (then NDCG@k, then grid order); returns
    (params, validation metrics). Only ``split.train`` is read."""
    points = grid_points(baseline.grid if grid is None else grid)
    if len(points) <= 1:
        return (points[0] if points else {}), {}
    validation = evaluate.validation_split(split)
    val_items = validation.test_items()
    best = None
    for params in points:
        m = score(baseline, params, validation.train, val_items, items, k, split.seed)
        key = (m["precision"], m["ndcg"])
        if best is None or key > best[0]:
            best = (key, params, m)
    return best[1], best[2]


def run(split: evaluate.Split, items: Sequence[int], k: int = evaluate.DEFAULT_K,
        baselines: Sequence[Baseline] = BASELINES, grids: Mapping[str, Mapping] | None = None) -> dict:
    """Tune every baseline on a validation split of ``split.train``, refit on ``split.train`` and
    score on ``split.test``. Returns {name: metrics + params + validation + seconds}."""
    require()
    test_items = split.test_items()
    results = {}
    for baseline in baselines:
        started = time.perf_counter()
        params, val = tune(baseline, split, items, k, (grids or {}).get(baseline.name))
        metrics = score(baseline, params, split.train, test_items, items, k, split.seed)
        metrics["params"] = params
        if val:
            metrics["validation"] = {m: round(val[m], 4) for m in ("precision", "recall", "ndcg")}
        metrics["seconds"] = round(time.perf_counter() - started, 3)
        results[baseline.name] = metrics
    return results
