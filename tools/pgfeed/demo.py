"""`pgfeed demo`: the newcomer's tour. Every step is a SQL call; this file only
orchestrates and prints.

The demo builds its world where every other command looks: the database named
by --dsn / the environment, or else the embedded server's default database
(pgfeed). It migrates that database and replaces pgfeed's data there
(settings and profiles stay), so `pgfeed feed`, `pgfeed doctor` and
`psql "$(pgfeed server url)"` see the demo world afterwards."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import psycopg

from . import database, install

def _demo_dsn(dsn: str | None, data_dir: Path | None) -> str:
    if dsn:
        return database.normalize_dsn(dsn)
    return database.start_embedded(data_dir).dsn()


def _active_viewer(conn) -> int:
    """A viewer with a rich history, so personalization has something to show."""
    return conn.execute(
        "SELECT user_id FROM feed.user_signals ORDER BY observations DESC, user_id LIMIT 1 OFFSET 3").fetchone()[0]


DEMO_EXPERIMENT = "demo-hybrid"
TRAFFIC_VIEWERS = 40


def default_report_path() -> Path:
    return Path(tempfile.gettempdir()) / "pgfeed-demo-report.html"


def _traffic(conn, viewers: int = TRAFFIC_VIEWERS) -> int:
    """An A/B test and some served pages with likes, so the report has
    something to show: the most active viewers each scroll two pages and like
    a few of the posts served (deterministically); then the test is stopped.
    Returns the pages served."""
    conn.execute(
        "INSERT INTO feed.experiments (name, variants, status, description) VALUES (%s,"
        """ '{"control": {"weight": 50}, "hybrid": {"weight": 50, "profile": "hybrid"}}', 'running',"""
        " 'pgfeed demo: does the hybrid profile engage more?') ON CONFLICT (name) DO NOTHING", [DEMO_EXPERIMENT])
    users = [r[0] for r in conn.execute(
        "SELECT user_id FROM feed.user_signals ORDER BY observations DESC, user_id LIMIT %s", [viewers]).fetchall()]
    pages = 0
    for n, user in enumerate(users):
        cursor = None
        for _ in range(2):
            rows = conn.execute("SELECT post_id, next_cursor FROM feed.get_personalized_feed(%s, 10, %s)",
                                [user, cursor]).fetchall()
            if not rows:
                break
            pages += 1
            cursor = rows[0][1]
            for post_id, _ in rows[n % 3::4]:
                conn.execute("SELECT feed.record_interaction(%s, %s, 'like')", [user, post_id])
    # stopped, so the tour below shows the feed everyone gets; its results stay
    conn.execute("UPDATE feed.experiments SET status = 'stopped' WHERE name = %s", [DEMO_EXPERIMENT])
    return pages


def _write_report(target: str, path: Path, out, hint: str) -> None:
    """The demo's last step: the HTML report of the demo world, or how to get it."""
    import click
    from rich.markup import escape

    from .report import EXTRA_HINT, write_report

    try:
        with psycopg.connect(target, autocommit=True) as conn:
            written = write_report(conn, path)
    except click.ClickException:
        out.print(f"\n[bold]report[/bold]: not written; {escape(EXTRA_HINT)}, then: "
                  f"{escape(f'pgfeed report --html {path}{hint}')}")
        return
    out.print(f"\n[bold]report[/bold] of the demo world (source mix, engagement per source and variant, page shape):"
              f" {escape(str(written.resolve()))}")


def run_demo(*, dsn, data_dir, users, posts, interactions, seed, viewer, out, show_dsn: bool | None = None,
             report_path: Path | None = None) -> None:
    """``show_dsn``: name the database in the commands suggested at the end
    (default: when ``dsn`` is given; not needed when it comes from the environment).
    ``report_path``: where the HTML report goes (default: pgfeed-demo-report.html
    in the temporary directory)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from rich.markup import escape

    from .cli_feed import fetch_page, page_table
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
        with psycopg.connect(target, autocommit=True) as conn:
            database_name = conn.execute("SELECT current_database()").fetchone()[0]
            existing = conn.execute("SELECT count(*) FROM feed.posts").fetchone()[0]
        if existing:
            bar.console.print(f"replacing the {existing} posts (and pgfeed's other data) in database "
                              f"{escape(database_name)}; settings and profiles stay")

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
            task = bar.add_task("an A/B test, some traffic", total=1)
            _traffic(conn)
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

    out.print(f"\ndone in {time.perf_counter() - started:.0f} s; the world is in database "
              f"{escape(database_name)}. Explore further:")
    if show_dsn is None:
        show_dsn = bool(dsn)
    hint = f" --dsn '{target}'" if show_dsn else ""
    if not dsn and data_dir is not None and Path(data_dir) != database.default_data_dir():
        hint = f" --data-dir {data_dir}"
    psql = f"psql '{target}'" if dsn else f"psql \"$(pgfeed server url{hint})\""
    for command in (f"pgfeed feed {viewer}{hint}",
                    f"pgfeed feed {viewer} --profile social{hint}",
                    f"pgfeed explain {viewer} {liked['post_id']}{hint}",
                    f"pgfeed similar {liked['post_id']}{hint}",
                    f"pgfeed doctor{hint}",
                    f"pgfeed experiments results {DEMO_EXPERIMENT}{hint}",
                    f"{psql}   # then: SELECT * FROM feed.get_personalized_feed({viewer}, 12, NULL);"):
        out.print(f"   {escape(command)}")
    _write_report(target, Path(report_path) if report_path is not None else default_report_path(), out, hint)
