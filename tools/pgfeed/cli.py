"""The pgfeed command line. Thin by design: every command calls SQL and prints;
none ranks, filters or scores."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from . import __version__, database, install

DSN_HELP = "PostgreSQL DSN. Default: $PGFEED_DSN, then $DATABASE_URL, then the embedded server."
DATA_DIR_HELP = "Data directory of the embedded server. Default: $PGFEED_DATA_DIR or a per-user directory."


class NotMigrated(click.ClickException):
    exit_code = 2

    def __init__(self):
        super().__init__("this database has no pgfeed schema (or an old one); run `pgfeed migrate` first")


class Context:
    """Where the database is, resolved lazily (the embedded server starts only when needed)."""

    def __init__(self, dsn: str | None, data_dir: Path | None):
        self.dsn_option = dsn
        self.data_dir = data_dir
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            self._dsn = database.resolve_dsn(self.dsn_option, self.data_dir)
        return self._dsn

    def connect(self, require_schema: bool = True):
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True)
        if require_schema and install.current_revision(conn) != install.head_revision():
            conn.close()
            raise NotMigrated()
        return conn


def dsn_options(func):
    func = click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help=DATA_DIR_HELP)(func)
    func = click.option("--dsn", help=DSN_HELP)(func)
    return func


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def echo_json(value) -> None:
    click.echo(json.dumps(value, default=str))


def console():
    from rich.console import Console

    # a pipe or a log file gets a wide page instead of rich's 80 columns
    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pgfeed")
def cli():
    """pgfeed: a personalized feed-ranking engine inside PostgreSQL.

    \b
    Example:
        pgfeed demo                    # the tour: migrate, seed, rank, explain
        pgfeed migrate --dsn postgresql://app@db/app
        pgfeed feed 42 --page-size 12
    """


# ---------------------------------------------------------------------------
# install and server

@cli.command()
@dsn_options
@click.option("--sql", "print_sql", is_flag=True, help="Print the SQL instead of running it, for review.")
@click.option("--embedding-dim", type=click.IntRange(1, install.MAX_EMBEDDING_DIM), default=None,
              help="Dimension of feed.posts.embedding, chosen at install (default 384).")
@click.option("--force-functions", is_flag=True, help="Re-apply sql/functions even if unchanged.")
@json_option
def migrate(dsn, data_dir, print_sql, embedding_dim, force_functions, as_json):
    """Bring the database to head: schema revisions, then the SQL functions.

    Safe to run again (a no-op at head) and from two places at once (an
    advisory lock serializes them); a failure leaves the database unchanged.

    \b
    Example:
        pgfeed migrate
        pgfeed migrate --sql --dsn postgresql://app@db/app > review.sql
    """
    ctx = Context(dsn, data_dir)
    if print_sql:
        click.echo(install.migration_sql(ctx.dsn, embedding_dim), nl=False)
        return
    report = install.migrate(ctx.dsn, embedding_dim=embedding_dim, force_functions=force_functions)
    if as_json:
        echo_json(report.__dict__ | {"changed": report.changed})
        return
    if report.fresh_install:
        click.echo(f"installed pgfeed schema at revision {report.revision_after}")
    elif report.revision_before != report.revision_after:
        click.echo(f"upgraded schema {report.revision_before} -> {report.revision_after}")
    else:
        click.echo(f"schema already at head ({report.revision_after})")
    click.echo(f"applied {len(report.function_files)} function files" if report.functions_applied
               else "functions unchanged")
    _print_status(ctx.dsn)


@cli.command()
@dsn_options
@json_option
def status(dsn, data_dir, as_json):
    """Show where the database is and what pgfeed holds there.

    \b
    Example:
        pgfeed status --json
    """
    _print_status(Context(dsn, data_dir).dsn, as_json)


def _status(dsn: str) -> dict:
    import psycopg

    with psycopg.connect(dsn) as conn:
        info = {
            "server_version": conn.execute("SHOW server_version").fetchone()[0],
            "database": conn.execute("SELECT current_database()").fetchone()[0],
            "pgvector": (conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
                         or [None])[0],
            "revision": install.current_revision(conn) if install.feed_schema_exists(conn) else None,
            "head": install.head_revision(),
        }
        if info["revision"]:
            info["embedding_dim"] = install.embedding_dimension(conn)
            info["posts"] = conn.execute("SELECT count(*) FROM feed.posts").fetchone()[0]
            info["interactions"] = conn.execute("SELECT count(*) FROM feed.interactions").fetchone()[0]
    info["migrated"] = info["revision"] == info["head"]
    return info


def _print_status(dsn: str, as_json: bool = False) -> None:
    info = _status(dsn)
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key:>15}: {value}")


@cli.group()
def server():
    """Manage the embedded PostgreSQL server (PostgreSQL 18 + pgvector)."""


def data_dir_option(func):
    return click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help=DATA_DIR_HELP)(func)


@server.command("start")
@data_dir_option
def server_start(data_dir):
    """Start the embedded server (initializing it on first use).

    \b
    Example:
        pgfeed server start && psql "$(pgfeed server url)"
    """
    status_ = database.start_embedded(data_dir)
    click.echo(f"running (pid {status_.pid}) in {status_.data_dir}")


@server.command("stop")
@data_dir_option
def server_stop(data_dir):
    """Stop the embedded server.

    \b
    Example:
        pgfeed server stop
    """
    click.echo("stopped" if database.stop_embedded(data_dir) else "not running")


@server.command("status")
@data_dir_option
@json_option
def server_status(data_dir, as_json):
    """Say whether the embedded server runs; exit 3 when it does not.

    \b
    Example:
        pgfeed server status || pgfeed server start
    """
    status_ = database.embedded_status(data_dir)
    if as_json:
        echo_json({"running": status_.running, "pid": status_.pid, "data_dir": str(status_.data_dir),
                   "dsn": status_.dsn() if status_.running else None})
    elif status_.running:
        click.echo(f"running (pid {status_.pid}) in {status_.data_dir}\n{status_.dsn()}")
    else:
        click.echo(f"not running (data directory {status_.data_dir})")
    if not status_.running:
        sys.exit(3)


@server.command("url")
@data_dir_option
def server_url(data_dir):
    """Print a DSN of the embedded server that psql and psycopg accept (starts it if needed).

    \b
    Example:
        psql "$(pgfeed server url)" -c 'SELECT * FROM feed.settings'
    """
    click.echo(database.start_embedded(data_dir).dsn())


# ---------------------------------------------------------------------------
# reading the feed

def _context_json(mode, profile, extra):
    context = json.loads(extra) if extra else {}
    if not isinstance(context, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--context")
    if mode:
        context["mode"] = mode
    if profile:
        context["profile"] = profile
    return context


def _viewer(user: str) -> int | None:
    if user.lower() in ("anon", "anonymous", "-"):
        return None
    try:
        return int(user)
    except ValueError:
        raise click.BadParameter(f"{user!r} is not a user id (an integer, or 'anon')", param_hint="USER")


def fetch_page(conn, viewer, page_size, cursor, context) -> list[dict]:
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb

    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
            " FROM feed.get_personalized_feed(%s, %s, %s, %s)",
            [viewer, page_size, cursor, Jsonb(context)]).fetchall()


def top_reasons(reasons: dict, n: int = 3) -> str:
    contributions = reasons.get("contributions") or {}
    best = sorted(((v, k) for k, v in contributions.items() if v), reverse=True)[:n]
    text = ", ".join(f"{k} {v:.3g}" for v, k in best)
    diversity = (reasons.get("multipliers") or {}).get("author_diversity")
    if diversity is not None and diversity < 1:
        text += f", author x{diversity:.2f}"
    return text or reasons.get("mode", "")


def page_table(conn, rows: list[dict], title: str):
    from rich.table import Table

    details = {}
    if rows:
        details = {r[0]: r[1:] for r in conn.execute(
            "SELECT post_id, category, post_type FROM feed.posts WHERE post_id = ANY(%s)",
            [[row["post_id"] for row in rows]])}
    table = Table(title=title, title_justify="left")
    for column, justify in (("rank", "right"), ("post", "right"), ("author", "right"), ("category", "left"),
                            ("type", "left"), ("source", "left"), ("score", "right"), ("why", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        category, post_type = details.get(row["post_id"], ("?", "?"))
        source = row["source"] + (" (seen)" if row["is_repeat"] else "")
        table.add_row(str(row["rank"]), str(row["post_id"]), str(row["author_id"]), category, post_type, source,
                      f"{row['score']:.4g}", top_reasons(row["reasons"]))
    return table


@cli.command()
@click.argument("user")
@click.option("--page-size", type=int, default=12, show_default=True)
@click.option("--after", "cursor", help="The next_cursor of the previous page.")
@click.option("--mode", help="personalized, trending, chronological or random.")
@click.option("--profile", help="A ranking profile (pgfeed profiles list).")
@click.option("--context", "extra", help='More context as JSON, e.g. \'{"connection": "3g"}\'.')
@dsn_options
@json_option
def feed(user, page_size, cursor, mode, profile, extra, dsn, data_dir, as_json):
    """Show a page of USER's feed (USER = a user id, or 'anon').

    \b
    Example:
        pgfeed feed 42
        pgfeed feed 42 --after v1.AbC... --profile social
        pgfeed feed anon --mode trending --json
    """
    viewer = _viewer(user)
    context = _context_json(mode, profile, extra)
    with Context(dsn, data_dir).connect() as conn:
        rows = fetch_page(conn, viewer, page_size, cursor, context)
        if as_json:
            echo_json(rows)
            return
        out = console()
        out.print(page_table(conn, rows, f"feed of {user}"))
        if rows:
            out.print(f"next page: pgfeed feed {user} --page-size {page_size} --after {rows[0]['next_cursor']}")
        else:
            out.print("no eligible posts")


@cli.command()
@click.argument("user")
@click.argument("post", type=int)
@click.option("--profile", help="A ranking profile (default: default).")
@click.option("--context", "extra", help="More context as JSON.")
@dsn_options
@json_option
def explain(user, post, profile, extra, dsn, data_dir, as_json):
    """Explain POST's score for USER, and any rule that keeps it out of the feed.

    \b
    Example:
        pgfeed explain 42 1001 --profile social
    """
    from psycopg.types.json import Jsonb

    viewer = _viewer(user)
    with Context(dsn, data_dir).connect() as conn:
        result = conn.execute("SELECT feed.explain_score(%s, %s, %s)",
                              [viewer, post, Jsonb(_context_json(None, profile, extra))]).fetchone()[0]
    if as_json:
        echo_json(result)
        return
    from rich.table import Table

    out = console()
    verdict = "eligible" if result["eligible"] else "not shown: " + ", ".join(result["excluded_because"])
    if result.get("in_cooldown"):
        verdict += f" (seen {result['last_seen_at']}: only as a controlled repeat)"
    out.print(f"post {post} for user {user}, profile {result['profile']}: score {result['score']:.6g}; {verdict}")
    table = Table("component", "value", "weight", "contribution")
    for name, value in sorted(result["components"].items(), key=lambda kv: -abs(result["contributions"][kv[0]])):
        table.add_row(name, f"{value:.4g}", f"{result['weights'].get(name, 0):.3g}",
                      f"{result['contributions'][name]:.4g}")
    out.print(table)


@cli.command()
@click.argument("post", type=int)
@click.option("--limit", type=int, default=10, show_default=True)
@dsn_options
@json_option
def similar(post, limit, dsn, data_dir, as_json):
    """List the posts most similar to POST (cosine similarity of embeddings).

    \b
    Example:
        pgfeed similar 1001 --limit 5
    """
    with Context(dsn, data_dir).connect() as conn:
        rows = conn.execute("SELECT s.post_id, s.similarity, p.author_id, p.category FROM feed.similar_posts(%s, %s) s"
                            " JOIN feed.posts p USING (post_id) ORDER BY s.similarity DESC, s.post_id",
                            [post, limit]).fetchall()
    if as_json:
        echo_json([{"post_id": r[0], "similarity": r[1], "author_id": r[2], "category": r[3]} for r in rows])
        return
    from rich.table import Table

    table = Table("post", "similarity", "author", "category", title=f"posts like {post}", title_justify="left")
    for r in rows:
        table.add_row(str(r[0]), f"{r[1]:.4f}", str(r[2]), r[3])
    console().print(table)


# ---------------------------------------------------------------------------
# scheduled work

@cli.command()
@click.option("--window", default=None, help="Posts created within this interval (default: setting trending_window).")
@dsn_options
@json_option
def heartbeat(window, dsn, data_dir, as_json):
    """Recompute trending scores (the heartbeat); one line of counts.

    \b
    Example (crontab, every 10 minutes):
        */10 * * * * pgfeed heartbeat --dsn postgresql://app@db/app
    """
    with Context(dsn, data_dir).connect() as conn:
        started = time.perf_counter()
        if window:
            touched = conn.execute("SELECT feed.refresh_trending_scores(%s::interval)", [window]).fetchone()[0]
        else:
            touched = conn.execute(
                "SELECT feed.refresh_trending_scores(feed._setting_interval('trending_window'))").fetchone()[0]
        elapsed = time.perf_counter() - started
    result = {"rescored": touched, "seconds": round(elapsed, 3)}
    if as_json:
        echo_json(result)
    else:
        click.echo(f"heartbeat: rescored {touched} posts in {elapsed:.2f}s")


@cli.command()
@click.option("--loop", "loop_seconds", type=click.IntRange(1), default=None,
              help="Run again every SECONDS (for a service instead of cron).")
@dsn_options
@json_option
def maintenance(loop_seconds, dsn, data_dir, as_json):
    """Run feed.run_maintenance(): heartbeat, pruning, creator quality, expiry.

    Prints one line of counts per run; exits non-zero when a run fails.

    \b
    Example (crontab, every 10 minutes):
        */10 * * * * pgfeed maintenance --dsn postgresql://app@db/app
        pgfeed maintenance --loop 600      # or as a long-running service
    """
    ctx = Context(dsn, data_dir)
    while True:
        started = time.perf_counter()
        with ctx.connect() as conn:
            result = conn.execute("SELECT feed.run_maintenance()").fetchone()[0]
        result["seconds"] = round(time.perf_counter() - started, 3)
        if as_json:
            echo_json(result)
        else:
            click.echo(time.strftime("%Y-%m-%dT%H:%M:%S ") + " ".join(f"{k}={v}" for k, v in result.items()))
        sys.stdout.flush()
        if loop_seconds is None:
            return
        time.sleep(loop_seconds)


@cli.group()
def recs():
    """Precomputed recommendations (item-to-item collaborative filtering)."""


@recs.command("build")
@click.option("--lookback", default="30 days", show_default=True, help="Interactions within this interval.")
@click.option("--only-changed", is_flag=True, help="Only viewers with interactions since the last build.")
@dsn_options
@json_option
def recs_build(lookback, only_changed, dsn, data_dir, as_json):
    """Build recommendations for every viewer (or only changed ones).

    \b
    Example (crontab, nightly):
        0 3 * * * pgfeed recs build --dsn postgresql://app@db/app
    """
    with Context(dsn, data_dir).connect() as conn:
        started = time.perf_counter()
        if only_changed:
            rows = conn.execute("SELECT feed.build_recommendations(%s::interval, true)", [lookback]).fetchone()[0]
        else:
            rows = conn.execute("SELECT feed.build_recommendations(%s::interval)", [lookback]).fetchone()[0]
        elapsed = time.perf_counter() - started
    if as_json:
        echo_json({"recommendations": rows, "seconds": round(elapsed, 3)})
    else:
        click.echo(f"recommendations: wrote {rows} rows in {elapsed:.2f}s")


# ---------------------------------------------------------------------------
# data

def progress_bar():
    """A rich progress callback (name, done, total) and its context manager."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), console=console(), transient=False)
    task = bar.add_task("starting", total=1)

    def report(name: str, done: int, total: int) -> None:
        bar.update(task, description=name, completed=done, total=total)

    return bar, report


@cli.command()
@click.option("--users", type=int, default=1000, show_default=True)
@click.option("--posts", type=int, default=10000, show_default=True)
@click.option("--interactions", type=int, default=100000, show_default=True)
@click.option("--impressions", type=int, default=None, help="Default: half the interactions.")
@click.option("--days", type=float, default=30, show_default=True, help="Posts and activity spread over this many days.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Same seed, same world.")
@click.option("--no-embeddings", is_flag=True, help="Leave feed.posts.embedding empty.")
@click.option("--replace", is_flag=True, help="Wipe pgfeed's data (not settings/profiles) first.")
@dsn_options
@json_option
def seed(users, posts, interactions, impressions, days, seed_value, no_embeddings, replace, dsn, data_dir, as_json):
    """Generate a realistic synthetic world, in SQL, deterministic per seed.

    \b
    Example:
        pgfeed seed --users 1000 --posts 10000 --interactions 100000 --seed 7
    """
    from .seed import SeedError, seed_world

    ctx = Context(dsn, data_dir)
    ctx.connect().close()
    kwargs = dict(users=users, posts=posts, interactions=interactions, impressions=impressions, days=days,
                  seed=seed_value, embeddings=not no_embeddings, replace=replace)
    try:
        if as_json:
            result = seed_world(ctx.dsn, **kwargs)
        else:
            bar, report = progress_bar()
            with bar:
                result = seed_world(ctx.dsn, progress=report, **kwargs)
    except SeedError as exc:
        raise click.ClickException(str(exc))
    if as_json:
        echo_json(result)
    else:
        counts = result.get("counts", result)
        click.echo("seeded: " + ", ".join(f"{k}={v}" for k, v in counts.items() if isinstance(v, int)))


@cli.command("import")
@click.argument("kind", type=click.Choice(["interactions", "posts", "follows"]))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@dsn_options
@json_option
def import_(kind, path, dsn, data_dir, as_json):
    """Bulk-load a CSV file (with a header naming the columns) in one transaction.

    A bad row is reported with its line number and nothing is imported.

    \b
    Example:
        pgfeed import posts posts.csv
        pgfeed import interactions history.csv
    """
    from .importer import ImportFailed, import_csv

    ctx = Context(dsn, data_dir)
    ctx.connect().close()
    try:
        result = import_csv(ctx.dsn, kind, path)
    except ImportFailed as exc:
        raise click.ClickException(str(exc))
    if as_json:
        echo_json(result)
    else:
        click.echo(f"imported {kind}: " + ", ".join(f"{k}={v}" for k, v in result.items()))


# ---------------------------------------------------------------------------
# configuration

@cli.group()
def settings():
    """Read and change feed.settings (read by the functions at call time)."""


@settings.command("list")
@dsn_options
@json_option
def settings_list(dsn, data_dir, as_json):
    """List every setting with its value and default.

    \b
    Example:
        pgfeed settings list
    """
    with Context(dsn, data_dir).connect() as conn:
        rows = conn.execute("SELECT name, value, default_value, kind, description FROM feed.settings"
                            " ORDER BY name").fetchall()
    if as_json:
        echo_json([dict(zip(("name", "value", "default", "kind", "description"), r)) for r in rows])
        return
    from rich.table import Table

    table = Table("name", "value", "default", "description")
    for name, value, default, _kind, description in rows:
        table.add_row(name, value if value == default else f"[bold]{value}[/bold]", default, description)
    console().print(table)


@settings.command("get")
@click.argument("name")
@dsn_options
def settings_get(name, dsn, data_dir):
    """Print one setting's value.

    \b
    Example:
        pgfeed settings get cooldown
    """
    with Context(dsn, data_dir).connect() as conn:
        click.echo(conn.execute("SELECT feed._setting(%s)", [name]).fetchone()[0])


@settings.command("set")
@click.argument("name")
@click.argument("value")
@dsn_options
def settings_set(name, value, dsn, data_dir):
    """Change a setting (validated by the database).

    \b
    Example:
        pgfeed settings set cooldown '14 days'
        pgfeed settings set epsilon 0.05
    """
    with Context(dsn, data_dir).connect() as conn:
        conn.execute("SELECT feed._setting(%s)", [name])
        conn.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
    click.echo(f"{name} = {value}")


@settings.command("reset")
@click.argument("name")
@dsn_options
def settings_reset(name, dsn, data_dir):
    """Put a setting back to its default.

    \b
    Example:
        pgfeed settings reset epsilon
    """
    with Context(dsn, data_dir).connect() as conn:
        conn.execute("SELECT feed._setting(%s)", [name])
        value = conn.execute("UPDATE feed.settings SET value = default_value WHERE name = %s RETURNING value",
                             [name]).fetchone()[0]
    click.echo(f"{name} = {value}")


@cli.group()
def profiles():
    """Ranking profiles: weights, source quotas and parameters, changeable without a deploy."""


@profiles.command("list")
@dsn_options
@json_option
def profiles_list(dsn, data_dir, as_json):
    """List the ranking profiles.

    \b
    Example:
        pgfeed profiles list
    """
    with Context(dsn, data_dir).connect() as conn:
        rows = conn.execute("SELECT name, description, weights, source_quotas, params FROM feed.ranking_profiles"
                            " ORDER BY name").fetchall()
    if as_json:
        echo_json([dict(zip(("name", "description", "weights", "source_quotas", "params"), r)) for r in rows])
        return
    from rich.table import Table

    table = Table("name", "weights", "quotas", "description")
    for name, description, weights, quotas, _params in rows:
        table.add_row(name, ", ".join(f"{k} {v}" for k, v in weights.items()),
                      ", ".join(f"{k} {v}" for k, v in quotas.items()), description)
    console().print(table)


@profiles.command("show")
@click.argument("name")
@dsn_options
def profiles_show(name, dsn, data_dir):
    """Print one profile as JSON.

    \b
    Example:
        pgfeed profiles show social
    """
    with Context(dsn, data_dir).connect() as conn:
        row = conn.execute("SELECT to_jsonb(r) - 'updated_at' FROM feed.ranking_profiles r WHERE name = %s",
                           [name]).fetchone()
    if row is None:
        raise click.ClickException(f"unknown profile {name!r}; pgfeed profiles list shows them")
    click.echo(json.dumps(row[0], indent=2))


def _pairs(values: tuple[str, ...], option: str) -> dict:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=NUMBER", param_hint=option)
        try:
            result[key.strip()] = None if value.strip().lower() == "null" else float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number", param_hint=option)
    return result


@profiles.command("set")
@click.argument("name")
@click.option("--weight", "weights", multiple=True, help="COMPONENT=WEIGHT (0 removes it).")
@click.option("--quota", "quotas", multiple=True, help="SOURCE=SHARE of the page.")
@click.option("--param", "params", multiple=True, help="PARAM=VALUE.")
@click.option("--description", help="A new description.")
@dsn_options
def profiles_set(name, weights, quotas, params, description, dsn, data_dir):
    """Create or change a profile; values merge into what is there.

    \b
    Example:
        pgfeed profiles set default --weight recency=0.4 --weight novelty=0
        pgfeed profiles set mine --weight trending=1 --quota following=0.5
    """
    from psycopg.types.json import Jsonb

    with Context(dsn, data_dir).connect() as conn:
        conn.execute(
            "INSERT INTO feed.ranking_profiles AS r (name, description, weights, source_quotas, params)"
            " VALUES (%(name)s, coalesce(%(description)s, 'custom profile'), jsonb_strip_nulls(%(w)s),"
            "         jsonb_strip_nulls(%(q)s), %(p)s)"
            " ON CONFLICT (name) DO UPDATE SET"
            "   description = coalesce(%(description)s, r.description),"
            "   weights = (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(r.weights || %(w)s)"
            "              WHERE value <> '0'::jsonb),"
            "   source_quotas = (SELECT coalesce(jsonb_object_agg(key, value), '{}')"
            "                    FROM jsonb_each(r.source_quotas || %(q)s) WHERE value <> '0'::jsonb),"
            "   params = r.params || %(p)s, updated_at = now()",
            {"name": name, "description": description, "w": Jsonb(_pairs(weights, "--weight")),
             "q": Jsonb(_pairs(quotas, "--quota")), "p": Jsonb(_pairs(params, "--param"))})
    click.echo(f"profile {name} saved")


@profiles.command("reset")
@click.argument("name")
@dsn_options
def profiles_reset(name, dsn, data_dir):
    """Restore a shipped profile to its shipped values.

    \b
    Example:
        pgfeed profiles reset default
    """
    ctx = Context(dsn, data_dir)
    with ctx.connect() as conn:
        if not conn.execute("DELETE FROM feed.ranking_profiles WHERE name = %s RETURNING 1", [name]).fetchone():
            raise click.ClickException(f"unknown profile {name!r}")
    install.migrate(ctx.dsn, force_functions=True)
    with ctx.connect() as conn:
        if conn.execute("SELECT 1 FROM feed.ranking_profiles WHERE name = %s", [name]).fetchone() is None:
            raise click.ClickException(f"{name!r} is not a shipped profile; it was deleted")
    click.echo(f"profile {name} restored")


# ---------------------------------------------------------------------------
# health

@cli.command()
@dsn_options
@json_option
def doctor(dsn, data_dir, as_json):
    """Check the installation; exit 1 when something is wrong, saying what to do.

    \b
    Example:
        pgfeed doctor || echo "see above"
    """
    from .doctor import run_checks

    checks = run_checks(Context(dsn, data_dir).dsn)
    failed = [c for c in checks if c["status"] == "fail"]
    if as_json:
        echo_json({"ok": not failed, "checks": checks})
    else:
        marks = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FAIL[/red]",
                 "info": "[blue]info[/blue]"}
        out = console()
        for check in checks:
            line = f"{marks[check['status']]:<22} {check['name']}: {check['detail']}"
            if check.get("fix"):
                line += f"  -> {check['fix']}"
            out.print(line)
    if failed:
        sys.exit(1)


# ---------------------------------------------------------------------------
# the tour, measurement

@cli.command()
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--posts", type=int, default=20000, show_default=True)
@click.option("--interactions", type=int, default=150000, show_default=True)
@click.option("--seed", "seed_value", type=int, default=7, show_default=True)
@click.option("--user", "viewer", type=int, default=None, help="Whose feed to show (default: an active viewer).")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR", help=DATA_DIR_HELP)
@click.option("--dsn", help="Run the demo in this (empty or demo) database instead of the embedded one.")
def demo(users, posts, interactions, seed_value, viewer, data_dir, dsn):
    """The tour: migrate, seed a world, rank a feed with its reasons, react to a like.

    On the embedded server it uses a database of its own, pgfeed_demo,
    recreated on every run.

    \b
    Example:
        pgfeed demo
        pgfeed demo --users 500 --posts 5000 --interactions 30000
    """
    from .demo import run_demo

    run_demo(dsn=dsn, data_dir=data_dir, users=users, posts=posts, interactions=interactions,
             seed=seed_value, viewer=viewer, out=console())


@cli.command()
@click.option("--scale", type=click.Choice(["tiny", "small", "medium", "large"]), default="small", show_default=True,
              help="small 1k users/10k posts/100k interactions; medium x10; large x100 (5M impressions).")
@click.option("--clients", type=click.IntRange(1), default=None, help="Concurrent clients (default 2 x cores).")
@click.option("--samples", type=click.IntRange(10), default=1000, show_default=True, help="Feed calls per latency figure.")
@click.option("--seconds", type=click.FloatRange(1), default=10, show_default=True, help="Length of each throughput run.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True)
@click.option("--rebuild", is_flag=True, help="Seed the world again even if this database holds it.")
@click.option("--no-embeddings", is_flag=True, help="A world without embeddings (no taste vectors, no similar_posts).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write every figure here.")
@dsn_options
def bench(scale, clients, samples, seconds, seed_value, rebuild, no_embeddings, json_path, dsn, data_dir):
    """Benchmark the feed, the writes, the heartbeat and the batch jobs, with the floor.

    On the embedded server each scale gets its own database (pgfeed_bench_SCALE),
    seeded once and reused by later runs.

    \b
    Example:
        pgfeed bench --scale small --json bench-small.json
        pgfeed bench --scale large --clients 4
    """
    import os

    from rich.table import Table

    from . import bench as bench_module

    options = bench_module.Options(scale=scale, clients=clients or 2 * (os.cpu_count() or 1), samples=samples,
                                   seconds=seconds, seed=seed_value, rebuild=rebuild,
                                   embeddings=not no_embeddings)
    out = console()

    def progress(name, done, total):
        out.print(f"[dim]{time.strftime('%H:%M:%S')} {name} ({done}/{total})[/dim]")

    report = bench_module.run(dsn, data_dir, options, progress)
    table = Table("measure", "result", title=f"pgfeed bench, scale {scale} ({report['machine']['cores']} cores, "
                  f"PostgreSQL {report['postgresql']}, pgvector {report['pgvector']})", title_justify="left")
    for name, value in bench_module.summary_rows(report):
        table.add_row(name, value)
    out.print(table)
    if json_path:
        json_path.write_text(json.dumps(report, indent=2, default=str))
        out.print(f"wrote {json_path}")


@cli.command("eval")
@click.option("--dataset", type=click.Choice(["ml100k", "csv"]), default="ml100k", show_default=True,
              help="ml100k: a MovieLens directory (u.data, u.item, u.genre); csv: user,item,rating|weight,timestamp.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--profile", default="relevance", show_default=True, help="The ranking profile the feed uses.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Seed of the 80/20 split.")
@click.option("--keep", is_flag=True, help="Keep the scratch database (its DSN is printed).")
@dsn_options
@json_option
def eval_(dataset, path, k, profile, seed_value, keep, dsn, data_dir, as_json):
    """Offline evaluation: P@k, R@k and NDCG@k of the real feed on held-out interactions.

    Loads the data into a scratch database, splits 80/20 (seeded), builds
    recommendations on the training part, asks feed.get_personalized_feed for
    every test user and scores it beside most-popular and random baselines
    measured by the same harness, and the published numbers.

    \b
    Example:
        pgfeed eval --dataset ml100k ../shared/eval-data/ml-100k
        pgfeed eval --dataset csv my-events.csv --profile hybrid --json
    """
    from . import eval_feed, evaluate

    server_dsn = Context(dsn, data_dir).dsn
    try:
        report = eval_feed.run(path, server_dsn, dataset=dataset, k=k, seed=seed_value, profile=profile, keep=keep)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc))
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(evaluate.format_report(report), nl=False)


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, not a traceback."""
    import psycopg

    try:
        cli.main(args=argv, prog_name="pgfeed", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except (database.DatabaseUnavailable, install.MigrationError) as exc:
        click.echo(f"pgfeed: error: {exc}", err=True)
        sys.exit(2)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"pgfeed: error: cannot reach the database: {first}", err=True)
        sys.exit(2)
    except psycopg.Error as exc:
        if exc.sqlstate in ("42P01", "42883", "3F000"):
            click.echo("pgfeed: error: this database has no pgfeed schema (or an old one); "
                       "run `pgfeed migrate` first", err=True)
            sys.exit(2)
        code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
        message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
        click.echo(f"pgfeed: error{code}: {message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

from .cli_experiments import experiments  # noqa: E402  (imports this module back)
from .report import report  # noqa: E402

cli.add_command(experiments)
cli.add_command(report)
