"""`pgfeed demo`: the newcomer's tour. Every step is a SQL call; this file only
orchestrates and prints."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from . import database, install

DEMO_DATABASE = "pgfeed_demo"


def _demo_dsn(dsn: str | None, data_dir: Path | None) -> str:
    if dsn:
        return database.normalize_dsn(dsn)
    status = database.start_embedded(data_dir)
    with psycopg.connect(status.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    return status.dsn(DEMO_DATABASE)


def _active_viewer(conn) -> int:
    """A viewer with a rich history, so personalization has something to show."""
    return conn.execute(
        "SELECT user_id FROM feed.user_signals ORDER BY observations DESC, user_id LIMIT 1 OFFSET 3").fetchone()[0]


def run_demo(*, dsn, data_dir, users, posts, interactions, seed, viewer, out) -> None:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .cli import fetch_page, page_table
    from .seed import seed_world

    started = time.perf_counter()
    out.print("[bold]pgfeed demo[/bold]: a feed-ranking engine inside PostgreSQL\n")
    with Progress(SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=out) as bar:
        task = bar.add_task("starting the embedded server", total=1)
        target = _demo_dsn(dsn, data_dir)
        bar.update(task, completed=1)

        task = bar.add_task("migrating (schema + functions)", total=1)
        install.migrate(target)
        bar.update(task, completed=1)

        task = bar.add_task("seeding a world", total=1)

        def seeded(name, done, total):
            bar.update(task, description=f"seeding: {name}"[:34], completed=done, total=total)

        seed_world(target, users=users, posts=posts, interactions=interactions, days=30, seed=seed,
                   progress=seeded, replace=True)
        bar.update(task, description="seeding a world")

        with psycopg.connect(target, autocommit=True) as conn:
            task = bar.add_task("heartbeat + maintenance", total=1)
            conn.execute("SELECT feed.run_maintenance()")
            bar.update(task, completed=1)
            task = bar.add_task("building recommendations", total=1)
            conn.execute("SELECT feed.build_recommendations('30 days')")
            bar.update(task, completed=1)

    with psycopg.connect(target, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM feed.posts), (SELECT count(DISTINCT follower_id) FROM feed.follows),"
            " (SELECT count(*) FROM feed.interactions), (SELECT count(*) FROM feed.recommendations)").fetchone()
        out.print(f"\nworld: {counts[0]} posts, {counts[1]} users who follow someone, {counts[2]} interactions, "
                  f"{counts[3]} precomputed recommendations\n")
        viewer = viewer if viewer is not None else _active_viewer(conn)

        out.print(f"[bold]1. user {viewer}'s first page[/bold]: "
                  f"SELECT * FROM feed.get_personalized_feed({viewer}, 10, NULL);")
        first = fetch_page(conn, viewer, 10, None, {})
        out.print(page_table(conn, first, f"page 1 for user {viewer} (profile default)"))

        out.print("\n[bold]2. page 2 through the cursor[/bold] (no post of page 1 comes back in this session)")
        second = fetch_page(conn, viewer, 10, first[0]["next_cursor"], {})
        out.print(page_table(conn, second, "page 2"))

        liked = second[0]
        author, category = conn.execute("SELECT author_id, category FROM feed.posts WHERE post_id = %s",
                                        [liked["post_id"]]).fetchone()
        before = conn.execute("SELECT feed.explain_score(%s, %s)", [viewer, liked["post_id"]]).fetchone()[0]
        out.print(f"\n[bold]3. user {viewer} likes post {liked['post_id']}[/bold] (author {author}, {category}):"
                  f" SELECT feed.record_interaction({viewer}, {liked['post_id']}, 'like');")
        conn.execute("SELECT feed.record_interaction(%s, %s, 'like')", [viewer, liked["post_id"]])
        after = conn.execute("SELECT feed.explain_score(%s, %s)", [viewer, liked["post_id"]]).fetchone()[0]
        for name in ("author_affinity", "author_recency", "category_affinity", "engagement", "novelty"):
            if name in before["components"]:
                out.print(f"   {name:<18} {before['components'][name]:>8.4f} -> {after['components'][name]:.4f}")
        third = fetch_page(conn, viewer, 10, second[0]["next_cursor"], {})
        related = [r for r in third if r["author_id"] == author]
        out.print(page_table(conn, third, "page 3, after the like"))
        out.print(f"   posts by author {author} on page 3: {len(related)}; the liked post is in the cooldown now "
                  "and never comes back unless inventory runs dry")

    out.print(f"\ndone in {time.perf_counter() - started:.0f}s. Explore further:")
    target_hint = f"--dsn '{target}'"
    for command in (f"pgfeed feed {viewer} {target_hint}",
                    f"pgfeed feed {viewer} --profile social {target_hint}",
                    f"pgfeed explain {viewer} {liked['post_id']} {target_hint}",
                    f"pgfeed similar {liked['post_id']} {target_hint}",
                    f"pgfeed doctor {target_hint}",
                    f"psql '{target}'   # then: SELECT * FROM feed.get_personalized_feed({viewer}, 12, NULL);"):
        out.print(f"   {command}")
