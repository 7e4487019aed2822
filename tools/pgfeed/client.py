"""A typed Python client for pgfeed's SQL functions.

The client never ranks, filters or scores anything: every method is one call of
a ``feed.*`` function (see docs/reference.md), with its result turned into
dataclasses and its errors turned into exceptions by SQLSTATE::

    import psycopg
    from pgfeed import Feed

    with psycopg.connect(dsn, autocommit=True) as conn:
        feed = Feed(conn)
        page = feed.page(42, size=12)
        for item in page:
            print(item.rank, item.post_id, item.source, item.reasons.get("contributions"))
        feed.record(42, page[0].post_id, "like")
        more = feed.page(42, size=12, after=page.next_cursor)

``Feed`` takes a psycopg ``Connection`` or a psycopg_pool ``ConnectionPool``;
``AsyncFeed`` takes an ``AsyncConnection`` or an ``AsyncConnectionPool``.

Transactions: the client never commits a connection it was given.

- With a pool, each call borrows a connection for that one call (the pool
  commits on success and rolls back on error).
- With a connection in autocommit mode, each call is its own transaction.
- With a connection not in autocommit mode (psycopg's default, and Django's
  inside ``atomic``), a call joins the caller's transaction, which the caller
  commits or rolls back. A call that raises undoes only itself: inside an open
  transaction it runs in a savepoint, so the transaction stays usable; as the
  first statement of a transaction, the transaction it began is rolled back.
"""

from __future__ import annotations

from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable, Iterator, Sequence

import psycopg
from psycopg.types.json import Jsonb, JsonbBinaryLoader, JsonbLoader

__all__ = [
    "AsyncFeed",
    "Feed",
    "FeedItem",
    "InvalidArgument",
    "NotFound",
    "Page",
    "PermissionDenied",
    "PgfeedError",
    "SimilarPost",
]


# --------------------------------------------------------------------- errors


class PgfeedError(Exception):
    """An error raised by a pgfeed SQL function, identified by its SQLSTATE.

    ``sqlstate`` is the five-character code, ``diag`` psycopg's diagnostic of the
    server's error (``diag.message_primary``, ``diag.message_hint``...), and the
    original psycopg exception is ``__cause__``.
    """

    sqlstate: str | None = None

    def __init__(self, message: str, sqlstate: str | None = None, diag: Any = None):
        super().__init__(message)
        self.message = message
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.diag = diag


class InvalidArgument(PgfeedError, ValueError):
    """SQLSTATE 22023: a bad argument (page size, action, amount, mode, profile, cursor...)."""

    sqlstate = "22023"


class NotFound(PgfeedError, LookupError):
    """SQLSTATE 23503: a post that does not exist, given to a write function."""

    sqlstate = "23503"


class PermissionDenied(PgfeedError, PermissionError):
    """SQLSTATE 42501: acting for another user, or calling what the role is not granted."""

    sqlstate = "42501"


_BY_SQLSTATE: dict[str, type[PgfeedError]] = {
    cls.sqlstate: cls for cls in (InvalidArgument, NotFound, PermissionDenied)  # type: ignore[misc]
}


def _translate(exc: psycopg.Error) -> PgfeedError | None:
    cls = _BY_SQLSTATE.get(exc.sqlstate or "")
    if cls is None:
        return None
    message = exc.diag.message_primary or str(exc)
    return cls(message, exc.sqlstate, exc.diag)


# ---------------------------------------------------------------- the records


@dataclass(frozen=True)
class FeedItem:
    """One row of a feed page (``feed.get_personalized_feed``)."""

    rank: int
    post_id: int
    author_id: int
    score: float
    source: str
    is_repeat: bool
    reasons: dict[str, Any] = field(default_factory=dict)

    @property
    def contributions(self) -> dict[str, Any]:
        """The score's components, when the row has them (personalized rows do;
        repeats and the trending, chronological and random modes do not)."""
        value = self.reasons.get("contributions")
        return value if isinstance(value, dict) else {}

    @property
    def profile(self) -> str | None:
        return self.reasons.get("profile")


@dataclass(frozen=True)
class Page:
    """A feed page: its items in rank order and the cursor of the next page.

    ``next_cursor`` is None only for an empty page (nothing left to show).
    A page is a sequence of its items: ``len(page)``, ``page[0]``, ``for item in page``.
    """

    items: list[FeedItem]
    next_cursor: str | None

    def __iter__(self) -> Iterator[FeedItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> FeedItem:
        return self.items[index]

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def post_ids(self) -> list[int]:
        return [item.post_id for item in self.items]


@dataclass(frozen=True)
class SimilarPost:
    """One row of ``feed.similar_posts``."""

    post_id: int
    similarity: float


# ------------------------------------------------------------ the SQL calls

_PAGE = ("SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
         " FROM feed.get_personalized_feed(%s::bigint, %s::integer, %s::text, %s::jsonb)")
_RECORD = ("SELECT feed.record_interaction(%s::bigint, %s::bigint, %s::text, %s::numeric,"
           " %s::integer)")
_IMPRESSIONS = "SELECT feed.record_impressions(%s::bigint, %s::bigint[], %s::text)"
_IMPRESSION = ("SELECT feed.record_impression(%s::bigint, %s::bigint, %s::text,"
               " %s::double precision, %s::text)")
_WATCH = ("SELECT feed.record_watch_progress(%s::bigint, %s::bigint, %s::integer, %s::integer,"
          " %s::boolean, %s::boolean, %s::boolean)")
_EXPLAIN = "SELECT feed.explain_score(%s::bigint, %s::bigint, %s::jsonb)"
_SIMILAR = "SELECT post_id, similarity FROM feed.similar_posts(%s::bigint, %s::integer)"


def _page_params(user_id: int | None, size: int, after: str | None, context: dict[str, Any]) -> list[Any]:
    return [user_id, size, after, Jsonb(context)]


def _page(rows: Sequence[tuple]) -> Page:
    items = [FeedItem(rank=r[0], post_id=r[1], author_id=r[2], score=r[3], source=r[4],
                      is_repeat=r[5], reasons=r[6] if r[6] is not None else {}) for r in rows]
    return Page(items=items, next_cursor=rows[0][7] if rows else None)


def _ids(post_ids: Iterable[int]) -> list[int]:
    if isinstance(post_ids, (str, bytes)):
        raise TypeError("post_ids must be an iterable of integers")
    return [int(p) for p in post_ids]


def _prepared(cur):
    """jsonb as Python objects on this cursor, whatever the connection's own loaders
    (Django, for one, loads jsonb as text on its connections)."""
    cur.adapters.register_loader("jsonb", JsonbLoader)
    cur.adapters.register_loader("jsonb", JsonbBinaryLoader)
    return cur


_IDLE = psycopg.pq.TransactionStatus.IDLE
_INTRANS = psycopg.pq.TransactionStatus.INTRANS


@contextmanager
def _joined(conn: psycopg.Connection) -> Iterator[None]:
    """Inside the caller's open transaction, a savepoint; otherwise nothing."""
    if not conn.autocommit and conn.info.transaction_status == _INTRANS:
        with conn.transaction():
            yield
    else:
        yield


@asynccontextmanager
async def _ajoined(conn: psycopg.AsyncConnection) -> AsyncIterator[None]:
    if not conn.autocommit and conn.info.transaction_status == _INTRANS:
        async with conn.transaction():
            yield
    else:
        yield


def _rollback_quietly(conn: psycopg.Connection) -> None:
    """Roll back after a failed call; a broken connection must not hide the call's own error."""
    try:
        conn.rollback()
    except psycopg.Error:
        pass


async def _arollback_quietly(conn: psycopg.AsyncConnection) -> None:
    try:
        await conn.rollback()
    except psycopg.Error:
        pass


# ------------------------------------------------------------- synchronous


class Feed:
    """pgfeed's functions over a psycopg ``Connection`` or a psycopg_pool ``ConnectionPool``."""

    def __init__(self, conn_or_pool: Any):
        if isinstance(conn_or_pool, psycopg.AsyncConnection) or _is_async_pool(conn_or_pool):
            raise TypeError("an async connection or pool needs AsyncFeed")
        if not isinstance(conn_or_pool, psycopg.Connection) and not hasattr(conn_or_pool, "connection"):
            raise TypeError("Feed needs a psycopg Connection or a psycopg_pool ConnectionPool, "
                            f"not {type(conn_or_pool).__name__}")
        self._target = conn_or_pool

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor]:
        try:
            if isinstance(self._target, psycopg.Connection):
                conn = self._target
                if conn.autocommit or conn.info.transaction_status != _IDLE:
                    with _joined(conn), conn.cursor() as cur:
                        yield _prepared(cur)
                else:
                    try:
                        with conn.cursor() as cur:
                            yield _prepared(cur)
                    except BaseException:
                        _rollback_quietly(conn)  # only this call was in the transaction it began
                        raise
            else:
                with self._target.connection() as conn, conn.cursor() as cur:
                    yield _prepared(cur)
        except psycopg.Error as exc:
            mapped = _translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def _all(self, query: str, params: Sequence[Any]) -> list[tuple]:
        with self._cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()

    def _one(self, query: str, params: Sequence[Any]) -> Any:
        with self._cursor() as cur:
            cur.execute(query, params)
            row = cur.fetchone()
            return row[0] if row else None

    def page(self, user_id: int | None, size: int = 12, after: str | None = None, **context: Any) -> Page:
        """A ranked page for ``user_id`` (None: an anonymous visitor).

        ``after`` is the previous page's ``next_cursor`` (None starts a session);
        keyword arguments form the request's context: ``mode``, ``profile``, ``device``,
        ``connection``, ``local_hour``, ``categories``, ``post_types``,
        ``exclude_post_ids``, ``in_network_only``."""
        return _page(self._all(_PAGE, _page_params(user_id, size, after, context)))

    def record(self, user_id: int, post_id: int, action: str, amount: float = 0, seconds: int = 0) -> int:
        """Record an interaction (like, comment, share, gift, tip, view...); its id."""
        return self._one(_RECORD, [user_id, post_id, action, amount, seconds])

    def impressions(self, user_id: int, post_ids: Iterable[int], session_id: str | None = None) -> int:
        """Record that the viewer saw these posts; how many impressions were recorded."""
        return self._one(_IMPRESSIONS, [user_id, _ids(post_ids), session_id])

    def impression(self, user_id: int, post_id: int, source: str | None = None, score: float | None = None,
                   session_id: str | None = None) -> None:
        """Record that the viewer saw one post."""
        self._one(_IMPRESSION, [user_id, post_id, source, score, session_id])

    def watch(self, user_id: int, post_id: int, play_ms: int, duration_ms: int, liked: bool = False,
              commented: bool = False, shared: bool = False) -> None:
        """Record how much of a video the viewer watched."""
        self._one(_WATCH, [user_id, post_id, play_ms, duration_ms, liked, commented, shared])

    def explain(self, user_id: int | None, post_id: int, **context: Any) -> dict[str, Any]:
        """Every component of one post's score for this viewer."""
        return self._one(_EXPLAIN, [user_id, post_id, Jsonb(context)])

    def similar(self, post_id: int, limit: int = 20) -> list[SimilarPost]:
        """The nearest posts by embedding, most similar first."""
        return [SimilarPost(r[0], r[1]) for r in self._all(_SIMILAR, [post_id, limit])]


# ------------------------------------------------------------ asynchronous


def _is_async_pool(target: Any) -> bool:
    try:
        from psycopg_pool import AsyncConnectionPool
    except ImportError:  # pragma: no cover - psycopg_pool is a dependency
        return False
    return isinstance(target, AsyncConnectionPool)


class AsyncFeed:
    """pgfeed's functions over a psycopg ``AsyncConnection`` or a psycopg_pool ``AsyncConnectionPool``.

    The same methods as :class:`Feed`, as coroutines."""

    def __init__(self, conn_or_pool: Any):
        if isinstance(conn_or_pool, psycopg.Connection):
            raise TypeError("a synchronous connection needs Feed, not AsyncFeed")
        if not isinstance(conn_or_pool, psycopg.AsyncConnection) and not _is_async_pool(conn_or_pool):
            raise TypeError("AsyncFeed needs a psycopg AsyncConnection or a psycopg_pool AsyncConnectionPool, "
                            f"not {type(conn_or_pool).__name__}")
        self._target = conn_or_pool

    @asynccontextmanager
    async def _cursor(self) -> AsyncIterator[psycopg.AsyncCursor]:
        try:
            if isinstance(self._target, psycopg.AsyncConnection):
                conn = self._target
                if conn.autocommit or conn.info.transaction_status != _IDLE:
                    async with _ajoined(conn), conn.cursor() as cur:
                        yield _prepared(cur)
                else:
                    try:
                        async with conn.cursor() as cur:
                            yield _prepared(cur)
                    except BaseException:
                        await _arollback_quietly(conn)  # only this call was in the transaction it began
                        raise
            else:
                async with self._target.connection() as conn, conn.cursor() as cur:
                    yield _prepared(cur)
        except psycopg.Error as exc:
            mapped = _translate(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def _all(self, query: str, params: Sequence[Any]) -> list[tuple]:
        async with self._cursor() as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def _one(self, query: str, params: Sequence[Any]) -> Any:
        async with self._cursor() as cur:
            await cur.execute(query, params)
            row = await cur.fetchone()
            return row[0] if row else None

    async def page(self, user_id: int | None, size: int = 12, after: str | None = None, **context: Any) -> Page:
        return _page(await self._all(_PAGE, _page_params(user_id, size, after, context)))

    async def record(self, user_id: int, post_id: int, action: str, amount: float = 0, seconds: int = 0) -> int:
        return await self._one(_RECORD, [user_id, post_id, action, amount, seconds])

    async def impressions(self, user_id: int, post_ids: Iterable[int], session_id: str | None = None) -> int:
        return await self._one(_IMPRESSIONS, [user_id, _ids(post_ids), session_id])

    async def impression(self, user_id: int, post_id: int, source: str | None = None,
                         score: float | None = None, session_id: str | None = None) -> None:
        await self._one(_IMPRESSION, [user_id, post_id, source, score, session_id])

    async def watch(self, user_id: int, post_id: int, play_ms: int, duration_ms: int, liked: bool = False,
                    commented: bool = False, shared: bool = False) -> None:
        await self._one(_WATCH, [user_id, post_id, play_ms, duration_ms, liked, commented, shared])

    async def explain(self, user_id: int | None, post_id: int, **context: Any) -> dict[str, Any]:
        return await self._one(_EXPLAIN, [user_id, post_id, Jsonb(context)])

    async def similar(self, post_id: int, limit: int = 20) -> list[SimilarPost]:
        return [SimilarPost(r[0], r[1]) for r in await self._all(_SIMILAR, [post_id, limit])]
