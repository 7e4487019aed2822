"""The typed Python client (pgfeed.Feed, pgfeed.AsyncFeed) against the real database.

The client only calls the SQL functions: these tests check what it returns, that it
returns the server's page unchanged, how it maps SQLSTATEs to exceptions, and that it
works over a connection (autocommit or not), a pool, and their async forms.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import pgfeed
from pgfeed import AsyncFeed, Feed, FeedItem, InvalidArgument, NotFound, Page, PermissionDenied, PgfeedError

from .helpers import add_post

DIM = 384


def world(db, n=30):
    for i in range(1, n + 1):
        add_post(db, i, author_id=100 + i % 7, category=["art", "music", "jazz"][i % 3],
                 post_type=["image", "video"][i % 2], age=f"{i * 2} hours")
    db.execute("INSERT INTO feed.follows (follower_id, followee_id) VALUES (42, 101), (42, 102)")


def vector(i: int) -> str:
    values = [0.0] * DIM
    values[i % DIM] = 1.0
    values[(i + 1) % DIM] = 0.5
    return "[" + ",".join(str(v) for v in values) + "]"


def sql_page(db, user, size, cursor, context=None):
    return db.execute("SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
                      " FROM feed.get_personalized_feed(%s, %s, %s, %s)",
                      [user, size, cursor, Jsonb(context or {})]).fetchall()


# ---------------------------------------------------------------------------
# the public names


def test_public_names_are_exported():
    for name in ("Feed", "AsyncFeed", "Page", "FeedItem", "InvalidArgument", "NotFound",
                 "PermissionDenied", "PgfeedError"):
        assert hasattr(pgfeed, name), name
        assert name in pgfeed.__all__
    for cls in (InvalidArgument, NotFound, PermissionDenied):
        assert issubclass(cls, PgfeedError)
    assert (InvalidArgument.sqlstate, NotFound.sqlstate, PermissionDenied.sqlstate) == ("22023", "23503", "42501")


# ---------------------------------------------------------------------------
# reading


def test_page_returns_typed_items_and_a_cursor(db):
    world(db)
    feed = Feed(db)
    page = feed.page(42, size=8)
    assert isinstance(page, Page) and len(page) == 8
    assert all(isinstance(item, FeedItem) for item in page)
    assert [item.rank for item in page] == list(range(1, 9))
    first = page[0]
    assert isinstance(first.post_id, int) and isinstance(first.author_id, int)
    assert isinstance(first.score, float) and isinstance(first.source, str)
    assert isinstance(first.is_repeat, bool) and isinstance(first.reasons, dict)
    assert isinstance(page.next_cursor, str) and page.next_cursor
    assert page.post_ids == [item.post_id for item in page.items]
    # the next page continues the session: no post twice
    second = feed.page(42, size=8, after=page.next_cursor)
    assert len(second) == 8 and not set(second.post_ids) & set(page.post_ids)
    assert second.next_cursor and second.next_cursor != page.next_cursor


def test_page_is_the_servers_page_unchanged(db):
    """The client never ranks: a replayed cursor gives the same rows through SQL and the client."""
    world(db)
    feed = Feed(db)
    first = feed.page(42, size=10)
    via_client = feed.page(42, size=10, after=first.next_cursor)
    via_sql = sql_page(db, 42, 10, first.next_cursor)
    assert [(i.rank, i.post_id, i.author_id, i.score, i.source, i.is_repeat, i.reasons) for i in via_client] \
        == [tuple(r[:7]) for r in via_sql]
    assert via_client.next_cursor == via_sql[0][7]


def test_context_keywords_reach_the_function(db):
    world(db)
    feed = Feed(db)
    trending = feed.page(42, size=6, mode="trending")
    assert {item.source for item in trending} <= {"trending", "repeat"}
    only_art = feed.page(42, size=6, categories=["art"])
    categories = db.execute("SELECT DISTINCT category FROM feed.posts WHERE post_id = ANY(%s)",
                            [only_art.post_ids]).fetchall()
    assert categories == [("art",)]
    social = feed.page(42, size=4, profile="social")
    assert all(item.profile == "social" for item in social)


def test_every_mode_and_repeat_rows_have_safe_contributions(db):
    """Rows without contributions (repeats, non-personal modes) give an empty dict, never a KeyError."""
    world(db, 8)
    feed = Feed(db)
    for mode in ("personalized", "trending", "chronological", "random"):
        for item in feed.page(42, size=8, mode=mode):
            assert isinstance(item.contributions, dict)
    feed.impressions(42, range(1, 9))
    repeats = feed.page(42, size=8)
    assert repeats and any(item.is_repeat for item in repeats)
    assert all(item.contributions == {} for item in repeats if item.is_repeat)


def test_anonymous_page_and_empty_page(db):
    feed = Feed(db)
    empty = feed.page(None, size=5)
    assert len(empty) == 0 and not empty and empty.next_cursor is None
    world(db, 5)
    anonymous = feed.page(None, size=5)
    assert len(anonymous) == 5 and {item.source for item in anonymous} <= {"chronological", "repeat"}


def test_explain_and_similar(db):
    world(db, 6)
    feed = Feed(db)
    explanation = feed.explain(42, 2)
    assert isinstance(explanation, dict)
    direct = db.execute("SELECT feed.explain_score(42, 2)").fetchone()[0]
    # scores decay with time between the two calls: compare the shape, not the floats
    assert explanation.keys() == direct.keys() and explanation["post_id"] == 2
    social = feed.explain(42, 2, profile="social")
    direct_social = db.execute("SELECT feed.explain_score(42, 2, '{\"profile\": \"social\"}')").fetchone()[0]
    assert social.keys() == direct_social.keys() and social != explanation
    for i in range(1, 7):
        db.execute("UPDATE feed.posts SET embedding = %s::vector WHERE post_id = %s", [vector(i), i])
    similar = feed.similar(2, limit=3)
    expected = db.execute("SELECT post_id, similarity FROM feed.similar_posts(2, 3)").fetchall()
    assert [(s.post_id, s.similarity) for s in similar] == expected
    assert len(similar) == 3 and 2 not in [s.post_id for s in similar]
    with pytest.raises(NotFound):
        feed.similar(999)


# ---------------------------------------------------------------------------
# writing


def test_record_returns_the_interaction_id_and_counts(db):
    world(db, 3)
    feed = Feed(db)
    first = feed.record(42, 2, "like")
    assert isinstance(first, int)
    second = feed.record(43, 2, "gift", amount=5)
    assert second > first
    feed.record(44, 2, "view", seconds=12)
    likes, gifts = db.execute("SELECT like_count, gift_amount FROM feed.posts WHERE post_id = 2").fetchone()
    assert likes == 1 and float(gifts) == 5.0
    assert db.execute("SELECT count(*) FROM feed.interactions WHERE post_id = 2").fetchone()[0] == 3


def test_impressions_impression_and_watch(db):
    world(db, 6)
    feed = Feed(db)
    assert feed.impressions(42, [1, 2, 3], session_id="s-1") == 3
    assert feed.impressions(42, (p for p in [4])) == 1
    assert feed.impression(42, 5, source="trending", score=0.5, session_id="s-1") is None
    assert db.execute("SELECT count(*) FROM feed.impressions WHERE user_id = 42").fetchone()[0] == 5
    assert feed.watch(42, 6, 28000, 30000, liked=True) is None
    assert db.execute("SELECT like_count FROM feed.posts WHERE post_id = 6").fetchone()[0] == 1
    # seen posts stay away (cooldown): the next page starts with the one unseen post... or repeats
    page = feed.page(42, size=6)
    assert all(item.is_repeat for item in page if item.post_id != 6) or not page


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("call", [
    lambda f: f.page(42, size=0),
    lambda f: f.page(42, size=101),
    lambda f: f.page(42, mode="sideways"),
    lambda f: f.page(42, after="v1.not-a-cursor"),
    lambda f: f.record(42, 1, "teleport"),
    lambda f: f.record(42, 1, "gift", amount=-1),
])
def test_bad_arguments_raise_invalid_argument(db, call):
    world(db, 3)
    with pytest.raises(InvalidArgument) as excinfo:
        call(Feed(db))
    error = excinfo.value
    assert error.sqlstate == "22023" and isinstance(error, ValueError) and isinstance(error, PgfeedError)
    assert isinstance(error.__cause__, psycopg.Error) and error.__cause__.sqlstate == "22023"
    assert error.message and error.diag.message_primary == error.message


def test_missing_post_raises_not_found_and_writes_nothing(db):
    world(db, 2)
    feed = Feed(db)
    for call in (lambda: feed.record(42, 999, "like"), lambda: feed.impressions(42, [1, 999]),
                 lambda: feed.impression(42, 999), lambda: feed.watch(42, 999, 1, 2)):
        with pytest.raises(NotFound) as excinfo:
            call()
        assert excinfo.value.sqlstate == "23503" and isinstance(excinfo.value, LookupError)
        assert "999" in str(excinfo.value)
    assert db.execute("SELECT (SELECT count(*) FROM feed.interactions) + (SELECT count(*) FROM feed.impressions)"
                      ).fetchone()[0] == 0


@pytest.fixture
def unprivileged_role(db):
    role = f"pgfeed_t_nobody_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        yield role
    finally:
        db.execute("RESET ROLE")
        db.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_role_without_rights_raises_permission_denied(db, db_dsn, unprivileged_role):
    world(db, 3)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f'SET ROLE "{unprivileged_role}"')
        feed = Feed(conn)
        with pytest.raises(PermissionDenied) as excinfo:
            feed.page(42)
        assert excinfo.value.sqlstate == "42501" and isinstance(excinfo.value, PermissionError)
        with pytest.raises(PermissionDenied):
            feed.record(42, 1, "like")


def test_a_viewer_acting_for_another_user_raises_permission_denied(db, db_dsn, unprivileged_role):
    """Contract §7: pgfeed_viewer may call the functions only as itself."""
    has_viewer = db.execute("SELECT to_regrole('pgfeed_viewer') IS NOT NULL"
                            " AND to_regprocedure('feed.current_viewer()') IS NOT NULL").fetchone()[0]
    if not has_viewer:
        pytest.skip("this installation has no pgfeed_viewer role / feed.current_viewer() yet (contract §7)")
    world(db, 3)
    db.execute(f'GRANT pgfeed_viewer TO "{unprivileged_role}"')
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f'SET ROLE "{unprivileged_role}"')
        conn.execute("SET pgfeed.viewer_id = '42'")
        feed = Feed(conn)
        assert len(feed.page(42, size=3)) == 3
        with pytest.raises(PermissionDenied):
            feed.page(43, size=3)
        with pytest.raises(PermissionDenied):
            feed.record(43, 1, "like")
        assert isinstance(feed.record(42, 1, "like"), int)


def test_other_errors_pass_through_unchanged(db, db_dsn):
    feed = Feed(db)
    db.execute("ALTER FUNCTION feed.similar_posts(bigint, integer) RENAME TO similar_posts_gone")
    with pytest.raises(psycopg.errors.UndefinedFunction):
        feed.similar(1)


def test_wrong_targets_are_refused():
    with pytest.raises(TypeError):
        Feed("postgresql://nowhere")
    with pytest.raises(TypeError):
        AsyncFeed(object())


# ---------------------------------------------------------------------------
# transactions, pools and async


def test_non_autocommit_connection_joins_the_callers_transaction(db, db_dsn):
    world(db, 5)

    def likes(*posts):
        return db.execute("SELECT coalesce(sum(like_count), 0) FROM feed.posts WHERE post_id = ANY(%s)",
                          [list(posts)]).fetchone()[0]

    with psycopg.connect(db_dsn) as conn:  # autocommit off: the caller commits, never the client
        feed = Feed(conn)
        feed.record(42, 1, "like")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert likes(1) == 0
        conn.commit()
        assert likes(1) == 1
        # an error as the first statement rolls back only what it began
        with pytest.raises(NotFound):
            feed.record(42, 999, "like")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # inside an open transaction: an error undoes only the failed call
        with conn.transaction():
            feed.record(42, 2, "like")
            with pytest.raises(NotFound):
                feed.record(42, 999, "like")
            with pytest.raises(InvalidArgument):
                feed.page(42, size=0)
            feed.record(42, 3, "like")
            assert len(feed.page(42, size=2)) == 2
            assert likes(2, 3) == 0
        assert likes(2, 3) == 2
        # a rolled-back transaction takes the calls with it
        with pytest.raises(RuntimeError):
            with conn.transaction():
                feed.record(42, 4, "like")
                raise RuntimeError
        assert likes(4) == 0
        feed.record(42, 5, "like")
        conn.rollback()
        assert likes(5) == 0


def test_pool(db, db_dsn):
    world(db, 12)
    with ConnectionPool(db_dsn, min_size=1, max_size=2, open=True) as pool:
        feed = Feed(pool)
        page = feed.page(42, size=6)
        assert len(page) == 6
        more = feed.page(42, size=6, after=page.next_cursor)
        assert len(more) == 6 and not set(more.post_ids) & set(page.post_ids)
        with pytest.raises(NotFound):
            feed.record(42, 999, "like")
        assert isinstance(feed.record(42, page[0].post_id, "like"), int)  # the pool is still usable
        with pytest.raises(InvalidArgument):
            feed.page(42, size=0)
        assert feed.impressions(42, page.post_ids) == 6
        assert feed.explain(42, 1) and isinstance(feed.similar(1), list)
    assert db.execute("SELECT like_count FROM feed.posts WHERE post_id = %s", [page[0].post_id]).fetchone()[0] == 1


def test_async_connection_and_pool(db, db_dsn):
    world(db, 12)

    async def main():
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            feed = AsyncFeed(conn)
            page = await feed.page(42, size=5)
            assert isinstance(page, Page) and len(page) == 5
            replay = await feed.page(42, size=5, after=page.next_cursor)
            assert replay.post_ids == [r[1] for r in sql_page(db, 42, 5, page.next_cursor)]
            like = await feed.record(42, page[0].post_id, "like")
            assert isinstance(like, int)
            assert await feed.impressions(42, page.post_ids, session_id="a") == 5
            await feed.impression(42, 12)
            await feed.watch(42, 11, 1000, 2000)
            assert isinstance(await feed.explain(42, 1, profile="social"), dict)
            assert await feed.similar(1) == []
            with pytest.raises(InvalidArgument):
                await feed.page(42, size=0)
            with pytest.raises(NotFound):
                await feed.record(42, 999, "like")
        async with await psycopg.AsyncConnection.connect(db_dsn) as conn:  # autocommit off
            feed = AsyncFeed(conn)
            with pytest.raises(NotFound):
                await feed.record(43, 999, "like")
            await feed.record(43, 1, "like")
            with pytest.raises(NotFound):
                await feed.record(43, 999, "like")
            assert len(await feed.page(43, size=3)) == 3
            await conn.commit()
        async with AsyncConnectionPool(db_dsn, min_size=1, max_size=2, open=False) as pool:
            feed = AsyncFeed(pool)
            pages = await asyncio.gather(feed.page(44, size=4), feed.page(45, size=4))
            assert [len(p) for p in pages] == [4, 4]
            await feed.record(44, 2, "like")
            with pytest.raises(InvalidArgument):
                await feed.record(44, 2, "teleport")
        with pytest.raises(TypeError):
            Feed(pool)
        return page

    page = asyncio.run(main())
    assert db.execute("SELECT like_count FROM feed.posts WHERE post_id = %s", [page[0].post_id]).fetchone()[0] >= 1
    assert db.execute("SELECT like_count FROM feed.posts WHERE post_id = 1").fetchone()[0] >= 1
    assert db.execute("SELECT count(*) FROM feed.interactions WHERE user_id = 44 AND action = 'like'"
                      ).fetchone()[0] == 1
    with pytest.raises(TypeError):
        AsyncFeed(db)


# ---------------------------------------------------------------------------
# the README's Python tour runs as written


def test_readme_python_tour_runs(db, db_dsn, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### In Python", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "from pgfeed import Feed" in code and '"postgresql://me@localhost/app"' in code
    world(db, 30)
    feed = Feed(db)
    feed.impressions(42, range(1, 25))  # so that the page holds repeats too
    exec(compile(code.replace('"postgresql://me@localhost/app"', repr(db_dsn)), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "22023" in out
    assert db.execute("SELECT count(*) FROM feed.interactions WHERE user_id = 42 AND action = 'like'"
                      ).fetchone()[0] == 1


def test_reasons_are_dicts_even_where_the_connection_loads_jsonb_as_text(db, db_dsn):
    """Django registers a text loader for jsonb on its connections; the client's records stay typed."""
    from psycopg.types.string import TextLoader

    world(db, 4)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.adapters.register_loader("jsonb", TextLoader)
        assert isinstance(conn.execute("SELECT '{}'::jsonb").fetchone()[0], str)
        feed = Feed(conn)
        page = feed.page(42, size=3)
        assert all(isinstance(item.reasons, dict) for item in page)
        assert isinstance(feed.explain(42, 1), dict)
        assert isinstance(conn.execute("SELECT '{}'::jsonb").fetchone()[0], str)  # left as it was
