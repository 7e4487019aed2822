"""The pgfeed command line. Thin by design: every command calls SQL and prints;
none ranks, filters or scores.

Conventions every command follows (docs/cli.md):
- the database comes from --dsn, PGFEED_DSN, DATABASE_URL, libpq's PG* variables,
  then the embedded server (pgfeed.database.resolve_dsn);
- an error is one line on stderr, ``pgfeed: error [SQLSTATE]: message`` (the
  SQLSTATE only when the server gave one), never a traceback;
- exit codes: EXIT_OK 0, EXIT_FAILURE 1, EXIT_USAGE 2, EXIT_UNAVAILABLE 3,
  EXIT_NOT_MIGRATED 4, 130 when interrupted;
- ``--json`` prints one JSON document on stdout instead of tables;
- progress (rich) goes to stderr, and only to a terminal (or PGFEED_PROGRESS=1).

Commands added by other modules register with one ``cli.add_command(...)`` line
at the end of this file.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click

from . import __version__, database, install

DSN_HELP = ("PostgreSQL DSN. Default: $PGFEED_DSN, then $DATABASE_URL, then libpq's PG* variables, "
            "then the embedded server.")
DATA_DIR_HELP = "Data directory of the embedded server. Default: $PGFEED_DATA_DIR or a per-user directory."

EXIT_OK = 0
EXIT_FAILURE = 1       # a command failed: the database refused a call, a check failed, a bad file
EXIT_USAGE = 2         # the command line itself is wrong (click's usage errors)
EXIT_UNAVAILABLE = 3   # the database cannot be reached, or the embedded server cannot start
EXIT_NOT_MIGRATED = 4  # the database has no pgfeed schema, or an old one: run pgfeed migrate
EXIT_INTERRUPTED = 130


class PgfeedError(click.ClickException):
    """One error line: ``pgfeed: error [SQLSTATE]: message``."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, sqlstate: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate
        if exit_code is not None:
            self.exit_code = exit_code

    def format_line(self) -> str:
        code = f" [{self.sqlstate}]" if self.sqlstate else ""
        return f"pgfeed: error{code}: {self.message}"

    def show(self, file=None) -> None:
        click.echo(self.format_line(), err=True)


class NotMigrated(PgfeedError):
    exit_code = EXIT_NOT_MIGRATED

    def __init__(self):
        super().__init__("this database has no pgfeed schema (or an old one); run `pgfeed migrate` first")


def _first_line(text: str) -> str:
    text = str(text).strip()
    return text.splitlines()[0] if text else ""


def translate(exc: BaseException) -> PgfeedError | None:
    """The one-line error for an exception a command let through, or None when it is a bug."""
    import psycopg

    from .importer import ImportFailed
    from .seed import SeedError

    if isinstance(exc, PgfeedError):
        return exc
    if isinstance(exc, database.DatabaseUnavailable):
        return PgfeedError(str(exc), exit_code=EXIT_UNAVAILABLE)
    if isinstance(exc, install.MigrationError):
        return PgfeedError(str(exc))
    if isinstance(exc, psycopg.Error):
        sqlstate = exc.sqlstate
        if isinstance(exc, psycopg.OperationalError) and (
                sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")):
            reason = _first_line(exc) or type(exc).__name__
            return PgfeedError(f"cannot reach the database: {reason}", sqlstate, EXIT_UNAVAILABLE)
        if sqlstate is None and isinstance(exc, psycopg.ProgrammingError) and (
                any(word in str(exc).lower() for word in ("dsn", "connection option", "connection info"))):
            return PgfeedError(f"cannot reach the database: {_first_line(exc)}", None, EXIT_UNAVAILABLE)
        if sqlstate in ("3F000",) or (sqlstate in ("42P01", "42883") and "feed." in str(exc)):
            return NotMigrated()
        message = (exc.diag.message_primary if exc.diag else None) or _first_line(exc) or type(exc).__name__
        return PgfeedError(message, sqlstate)
    if isinstance(exc, (ImportFailed, SeedError)):
        return PgfeedError(str(exc))
    if isinstance(exc, click.UsageError):
        return None  # shown by main with its hint
    if isinstance(exc, click.ClickException):
        return PgfeedError(exc.format_message(), exit_code=exc.exit_code)
    if isinstance(exc, (OSError, ValueError)):
        return PgfeedError(_first_line(exc) or type(exc).__name__)
    return None


class PgfeedGroup(click.Group):
    """The top-level group: runs a command and turns whatever it raises into the
    one error line and exit code of docs/cli.md (also under click's CliRunner)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name or "pgfeed", complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(f"pgfeed: error: {exc.format_message()}", err=True)
            if exc.ctx is not None:
                click.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
            sys.exit(EXIT_USAGE)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("pgfeed: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - every error gets the one format
            error = translate(exc)
            if error is None:
                if os.environ.get("PGFEED_DEBUG"):
                    raise
                error = PgfeedError(f"internal error ({type(exc).__name__}: {_first_line(exc)}); "
                                    "set PGFEED_DEBUG=1 for the traceback and report it")
            error.show()
            sys.exit(error.exit_code)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


class Context:
    """Where the database is, resolved lazily (the embedded server starts only when needed)."""

    def __init__(self, dsn: str | None, data_dir: Path | None):
        self.dsn_option = dsn
        self.data_dir = data_dir
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            self._dsn = database.resolve_dsn(self.dsn_option, self.data_dir, progress=server_progress)
        return self._dsn

    @property
    def embedded(self) -> bool:
        """True when the commands go to the embedded server (no DSN was named)."""
        return database.configured_dsn(self.dsn_option) is None

    def connect(self, require_schema: bool = True):
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True)
        if require_schema and install.current_revision(conn) != install.head_revision():
            conn.close()
            raise NotMigrated()
        return conn


def server_progress(message: str) -> None:
    """What the embedded server says while it starts (crash recovery), on stderr."""
    click.echo(f"pgfeed: server: {message}", err=True)


def dsn_options(func):
    func = click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help=DATA_DIR_HELP)(func)
    func = click.option("--dsn", help=DSN_HELP)(func)
    return func


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def echo_json(value) -> None:
    click.echo(json.dumps(value, default=str))


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # a pipe or a log file gets a wide page instead of rich's 80 columns
    return Console(highlight=False, width=None if stream.isatty() else 140, stderr=stderr,
                   file=stream)


def esc(value) -> str:
    """Data shown through rich: its brackets print literally ([follows author])."""
    from rich.markup import escape

    return escape(str(value))


def plain_table(*columns, title: str | None = None, **kwargs):
    from rich.table import Table

    table = Table(title=esc(title) if title else None, title_justify="left", **kwargs)
    for column in columns:
        if isinstance(column, tuple):
            table.add_column(column[0], justify=column[1])
        else:
            table.add_column(column)
    return table


# ---------------------------------------------------------------------------
# readable numbers

def human_duration(seconds: float) -> str:
    """15 s, 4 min 10 s, 3 h 5 min, 2 d 4 h."""
    seconds = float(seconds)
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds % 1 else f"{seconds:.0f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


_TIMEDELTA = re.compile(r"(?:(-?\d+) days?, )?(\d+):(\d\d):(\d\d)(?:\.\d+)?")


def humanize_timedeltas(text: str) -> str:
    """Python's str(timedelta) ('0:00:15.451418', '3 days, 1:02:03') in a text, made readable."""
    def replace(match):
        days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        return human_duration(days * 86400 + hours * 3600 + minutes * 60 + secs)

    return _TIMEDELTA.sub(replace, text)


def progress_enabled() -> bool:
    """Progress goes to stderr, only when a person watches it (or PGFEED_PROGRESS=1)."""
    flag = os.environ.get("PGFEED_PROGRESS", "").strip().lower()
    if flag in ("0", "false", "no"):
        return False
    return flag in ("1", "true", "yes") or sys.stderr.isatty()


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def update(self, *args, **kwargs):
        pass


def progress_display():
    """A rich Progress on stderr (a bar with counts and elapsed time), or a silent stand-in."""
    if not progress_enabled():
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console(stderr=True), transient=False)


@contextmanager
def spinner(description: str):
    """A spinner with elapsed time around one long SQL statement."""
    with progress_display() as bar:
        task = bar.add_task(description, total=None)
        yield
        bar.update(task, total=1, completed=1)


def progress_bar():
    """A rich progress callback (name, done, total) and its context manager:
    one line per stage, a stage finished when the next begins."""
    bar = progress_display()
    current: dict = {}

    def report(name: str, done: int, total: int) -> None:
        if current.get("name") != name:
            if current:
                bar.update(current["task"], completed=current["total"])
            current.update(name=name, task=bar.add_task(esc(name), total=total or None), total=total or 1)
        bar.update(current["task"], completed=done, total=total or None)
        current["total"] = total or 1

    return bar, report


@click.group(cls=PgfeedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pgfeed")
def cli():
    """pgfeed: a personalized feed-ranking engine inside PostgreSQL.

    \b
    Example:
        pgfeed demo                    # the tour: migrate, seed, rank, explain
        pgfeed migrate --dsn postgresql://app@db/app
        pgfeed feed 42 --page-size 12

    Errors print one line, `pgfeed: error [SQLSTATE]: ...`. Exit codes: 0 ok,
    1 failure, 2 usage error, 3 database unavailable, 4 not migrated.
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
            if conn.execute("SELECT to_regclass('feed.job_runs') IS NOT NULL").fetchone()[0]:
                ages = dict(conn.execute(
                    "SELECT job, extract(epoch FROM now() - last_run_at)::float8 FROM feed.job_runs").fetchall())
                info["heartbeat_seconds_ago"] = ages.get("heartbeat")
                info["recommendations_seconds_ago"] = ages.get("build_recommendations")
    info["migrated"] = info["revision"] == info["head"]
    return info


STATUS_LABELS = {"server_version": "server", "heartbeat_seconds_ago": "last heartbeat",
                 "recommendations_seconds_ago": "last recs build", "embedding_dim": "embedding dim"}


def _print_status(dsn: str, as_json: bool = False) -> None:
    info = _status(dsn)
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        if key.endswith("_seconds_ago"):
            value = "never" if value is None else f"{human_duration(value)} ago"
        click.echo(f"{STATUS_LABELS.get(key, key):>16}: {value}")


@cli.group()
def server():
    """Manage the embedded PostgreSQL server (PostgreSQL 18 + pgvector)."""


def data_dir_option(func):
    return click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help=DATA_DIR_HELP)(func)


def _server_json(status_) -> dict:
    return {"running": status_.running, "pid": status_.pid, "data_dir": str(status_.data_dir),
            "dsn": status_.dsn() if status_.running else None}


@server.command("start")
@data_dir_option
@json_option
def server_start(data_dir, as_json):
    """Start the embedded server (initializing it on first use).

    After a crash the server replays its write-ahead log before it accepts
    connections; this waits for that, printing what the server reports.

    \b
    Example:
        pgfeed server start && psql "$(pgfeed server url)"
    """
    status_ = database.start_embedded(data_dir, progress=server_progress)
    if as_json:
        echo_json(_server_json(status_))
    else:
        click.echo(f"running (pid {status_.pid}) in {status_.data_dir}")


@server.command("stop")
@data_dir_option
@json_option
def server_stop(data_dir, as_json):
    """Stop the embedded server.

    \b
    Example:
        pgfeed server stop
    """
    stopped = database.stop_embedded(data_dir)
    if as_json:
        echo_json({"stopped": stopped})
    else:
        click.echo("stopped" if stopped else "not running")


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
        echo_json(_server_json(status_))
    elif status_.running:
        click.echo(f"running (pid {status_.pid}) in {status_.data_dir}\n{status_.dsn()}")
    else:
        click.echo(f"not running (data directory {status_.data_dir})")
    if not status_.running:
        sys.exit(EXIT_UNAVAILABLE)


@server.command("url")
@click.option("--database", "database_name", default=database.EMBEDDED_DATABASE, show_default=True,
              help="The database the URL names (pgfeed's own is the default).")
@data_dir_option
@json_option
def server_url(database_name, data_dir, as_json):
    """Print a DSN of the embedded server that psql and psycopg accept (starts it if needed).

    The default database, pgfeed, is where every command without --dsn works
    (and where pgfeed demo builds its world).

    \b
    Example:
        psql "$(pgfeed server url)" -c 'SELECT * FROM feed.settings'
        psql "$(pgfeed server url --database postgres)"
    """
    dsn = database.start_embedded(data_dir, progress=server_progress).dsn(database_name)
    if as_json:
        echo_json({"dsn": dsn, "database": database_name})
    else:
        click.echo(dsn)


# ---------------------------------------------------------------------------
# reading the feed

def _context_json(mode, profile, extra):
    try:
        context = json.loads(extra) if extra else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc}); e.g. '{{\"connection\": \"3g\"}}'", param_hint="--context")
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
    reasons = reasons or {}
    contributions = reasons.get("contributions") or {}
    best = sorted(((v, k) for k, v in contributions.items() if v), reverse=True)[:n]
    text = ", ".join(f"{k} {v:.3g}" for v, k in best)
    diversity = (reasons.get("multipliers") or {}).get("author_diversity")
    if diversity is not None and diversity < 1:
        text += f", author x{diversity:.2f}"
    return text or str(reasons.get("mode", ""))


def page_table(conn, rows: list[dict], title: str):
    from rich.table import Table

    details = {}
    if rows:
        details = {r[0]: r[1:] for r in conn.execute(
            "SELECT post_id, category, post_type FROM feed.posts WHERE post_id = ANY(%s)",
            [[row["post_id"] for row in rows]])}
    table = Table(title=esc(title), title_justify="left")
    for column, justify in (("rank", "right"), ("post", "right"), ("author", "right"), ("category", "left"),
                            ("type", "left"), ("source", "left"), ("score", "right"), ("why", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        category, post_type = details.get(row["post_id"], ("?", "?"))
        source = row["source"] + (" (seen)" if row["is_repeat"] else "")
        table.add_row(str(row["rank"]), str(row["post_id"]), str(row["author_id"]), esc(category), esc(post_type),
                      esc(source), f"{row['score']:.4g}", esc(top_reasons(row["reasons"])))
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
            out.print(esc(f"next page: pgfeed feed {user} --page-size {page_size} --after {rows[0]['next_cursor']}"))
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
    out.print(esc(f"post {post} for user {user}, profile {result['profile']}: score {result['score']:.6g}; "
                  f"{verdict}"))
    table = Table("component", "value", "weight", "contribution")
    for column in table.columns[1:]:
        column.justify = "right"
    contributions = result.get("contributions") or {}
    for name, value in sorted((result.get("components") or {}).items(),
                              key=lambda kv: -abs(contributions.get(kv[0]) or 0)):
        table.add_row(esc(name), f"{value:.4g}", f"{(result.get('weights') or {}).get(name, 0):.3g}",
                      f"{contributions.get(name) or 0:.4g}")
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

    table = plain_table(("post", "right"), ("similarity", "right"), ("author", "right"), "category",
                        title=f"posts like {post}")
    for r in rows:
        table.add_row(str(r[0]), f"{r[1]:.4f}", str(r[2]), esc(r[3]))
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
        click.echo(f"heartbeat: rescored {touched} posts in {human_duration(elapsed)}")


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
        with spinner("building recommendations"):
            if only_changed:
                rows = conn.execute("SELECT feed.build_recommendations(%s::interval, true)",
                                    [lookback]).fetchone()[0]
            else:
                rows = conn.execute("SELECT feed.build_recommendations(%s::interval)", [lookback]).fetchone()[0]
        elapsed = time.perf_counter() - started
    if as_json:
        echo_json({"recommendations": rows, "seconds": round(elapsed, 3)})
    else:
        click.echo(f"recommendations: wrote {rows} rows in {human_duration(elapsed)}")


# ---------------------------------------------------------------------------
# data

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
        raise PgfeedError(str(exc))
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
    Importing the same file again changes nothing: posts are upserted by
    post_id, follows already there are skipped, and interactions already in
    the log (same values and created_at) are skipped. docs/cli.md lists the
    columns of each kind.

    \b
    Example:
        pgfeed import posts posts.csv
        pgfeed import follows follows.csv
        pgfeed import interactions history.csv
    """
    from .importer import import_csv

    ctx = Context(dsn, data_dir)
    ctx.connect().close()
    bar, report = progress_bar()
    started = time.perf_counter()
    with bar:
        result = import_csv(ctx.dsn, kind, path, progress=report)
    result["seconds"] = round(time.perf_counter() - started, 3)
    if as_json:
        echo_json(result)
    else:
        click.echo(import_summary(result))


def import_summary(result: dict) -> str:
    """`imported posts.csv: 3 rows, 2 new, 1 updated, 0 already there (0.2 s)`, and the rebuild's scope."""
    parts = [f"{result['rows']} rows", f"{result['inserted']} new"]
    if result["kind"] == "posts":
        parts.append(f"{result['updated']} updated")
    parts.append(f"{result['skipped']} already there")
    line = (f"imported {result['kind']} from {Path(result['path']).name}: " + ", ".join(parts)
            + f" ({human_duration(result['seconds'])})")
    rebuild = result.get("rebuild")
    if isinstance(rebuild, dict):
        scope = "the whole log" if result.get("rebuild_scope") == "all" else "the viewers and posts of the file"
        counts = ", ".join(f"{k} {v}" for k, v in rebuild.items() if isinstance(v, (int, float)))
        line += f"\nrebuilt counters and signals from {scope}" + (f": {counts}" if counts else "")
    return line


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
    table = plain_table("name", "value", "default", "description")
    for name, value, default, _kind, description in rows:
        table.add_row(esc(name), esc(value) if value == default else f"[bold]{esc(value)}[/bold]", esc(default),
                      esc(description))
    console().print(table)


@settings.command("get")
@click.argument("name")
@dsn_options
@json_option
def settings_get(name, dsn, data_dir, as_json):
    """Print one setting's value.

    \b
    Example:
        pgfeed settings get cooldown
    """
    with Context(dsn, data_dir).connect() as conn:
        value = conn.execute("SELECT feed._setting(%s)", [name]).fetchone()[0]
    if as_json:
        echo_json({"name": name, "value": value})
    else:
        click.echo(value)


# a value may start with a dash (epsilon -1): options are only the known ones
@settings.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("value")
@dsn_options
@json_option
def settings_set(name, value, dsn, data_dir, as_json):
    """Change a setting (validated by the database: a value outside the
    setting's range is refused with 22023 and nothing changes).

    \b
    Example:
        pgfeed settings set cooldown '14 days'
        pgfeed settings set epsilon 0.05
    """
    with Context(dsn, data_dir).connect() as conn:
        conn.execute("SELECT feed._setting(%s)", [name])
        conn.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
    if as_json:
        echo_json({"name": name, "value": value})
    else:
        click.echo(f"{name} = {value}")


@settings.command("reset")
@click.argument("name")
@dsn_options
@json_option
def settings_reset(name, dsn, data_dir, as_json):
    """Put a setting back to its default.

    \b
    Example:
        pgfeed settings reset epsilon
    """
    with Context(dsn, data_dir).connect() as conn:
        conn.execute("SELECT feed._setting(%s)", [name])
        value = conn.execute("UPDATE feed.settings SET value = default_value WHERE name = %s RETURNING value",
                             [name]).fetchone()[0]
    if as_json:
        echo_json({"name": name, "value": value})
    else:
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
    table = plain_table("name", "weights", "quotas", "description")
    for name, description, weights, quotas, _params in rows:
        table.add_row(esc(name), esc(", ".join(f"{k} {v}" for k, v in (weights or {}).items())),
                      esc(", ".join(f"{k} {v}" for k, v in (quotas or {}).items())), esc(description))
    console().print(table)


@profiles.command("show")
@click.argument("name")
@dsn_options
@json_option
def profiles_show(name, dsn, data_dir, as_json):
    """Print one profile as JSON (with or without --json).

    \b
    Example:
        pgfeed profiles show social
    """
    with Context(dsn, data_dir).connect() as conn:
        row = conn.execute("SELECT to_jsonb(r) - 'updated_at' FROM feed.ranking_profiles r WHERE name = %s",
                           [name]).fetchone()
    if row is None:
        raise PgfeedError(f"unknown profile {name!r}; pgfeed profiles list shows them")
    click.echo(json.dumps(row[0]) if as_json else json.dumps(row[0], indent=2))


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
@json_option
def profiles_set(name, weights, quotas, params, description, dsn, data_dir, as_json):
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
        saved = conn.execute("SELECT to_jsonb(r) - 'updated_at' FROM feed.ranking_profiles r WHERE name = %s",
                             [name]).fetchone()[0]
    if as_json:
        echo_json(saved)
    else:
        click.echo(f"profile {name} saved")


@profiles.command("reset")
@click.argument("name")
@dsn_options
@json_option
def profiles_reset(name, dsn, data_dir, as_json):
    """Restore a shipped profile to its shipped values.

    \b
    Example:
        pgfeed profiles reset default
    """
    ctx = Context(dsn, data_dir)
    with ctx.connect() as conn:
        if not conn.execute("DELETE FROM feed.ranking_profiles WHERE name = %s RETURNING 1", [name]).fetchone():
            raise PgfeedError(f"unknown profile {name!r}")
    install.migrate(ctx.dsn, force_functions=True)
    with ctx.connect() as conn:
        if conn.execute("SELECT 1 FROM feed.ranking_profiles WHERE name = %s", [name]).fetchone() is None:
            raise PgfeedError(f"{name!r} is not a shipped profile; it was deleted")
    if as_json:
        echo_json({"name": name, "restored": True})
    else:
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
        table = plain_table("", "check", "detail", box=None, show_header=False, pad_edge=False)
        for check in checks:
            detail = esc(humanize_timedeltas(str(check["detail"])))
            if check.get("fix"):
                detail += f"  [dim]-> {esc(check['fix'])}[/dim]"
            table.add_row(marks.get(check["status"], esc(check["status"])), esc(check["name"]), detail)
        console().print(table)
    if failed:
        sys.exit(EXIT_FAILURE)


# ---------------------------------------------------------------------------
# the tour, measurement

@cli.command()
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--posts", type=int, default=20000, show_default=True)
@click.option("--interactions", type=int, default=150000, show_default=True)
@click.option("--seed", "seed_value", type=int, default=7, show_default=True)
@click.option("--user", "viewer", type=int, default=None, help="Whose feed to show (default: an active viewer).")
@dsn_options
def demo(users, posts, interactions, seed_value, viewer, dsn, data_dir):
    """The tour: migrate, seed a world, rank a feed with its reasons, react to a like.

    It works in the database every other command uses (the embedded
    server's database pgfeed unless --dsn or the environment names one),
    migrating it and replacing pgfeed's data there (settings and profiles
    stay), so that `pgfeed feed`, `pgfeed doctor` and the rest see the demo
    world afterwards.

    \b
    Example:
        pgfeed demo
        pgfeed demo --users 500 --posts 5000 --interactions 30000
    """
    from .demo import run_demo

    run_demo(dsn=database.configured_dsn(dsn), data_dir=data_dir, users=users, posts=posts,
             interactions=interactions, seed=seed_value, viewer=viewer, out=console(), show_dsn=bool(dsn))


@cli.command()
@click.option("--scale", type=click.Choice(["tiny", "small", "medium", "large"]), default="small", show_default=True,
              help="small 1k users/10k posts/100k interactions; medium x10; large x100 (5M impressions).")
@click.option("--clients", type=click.IntRange(1), default=None, help="Concurrent clients (default 2 x cores).")
@click.option("--samples", type=click.IntRange(10), default=1000, show_default=True, help="Feed calls per latency figure.")
@click.option("--seconds", type=click.FloatRange(1), default=10, show_default=True, help="Length of each throughput run.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True)
@click.option("--rebuild", is_flag=True, help="Seed the world again even if this database holds it.")
@click.option("--no-embeddings", is_flag=True, help="A world without embeddings (no taste vectors, no similar_posts).")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every figure, as JSON, to this file.")
@dsn_options
@json_option
def bench(scale, clients, samples, seconds, seed_value, rebuild, no_embeddings, output_path, dsn, data_dir, as_json):
    """Benchmark the feed, the writes, the heartbeat and the batch jobs, with the floor.

    On the embedded server each scale gets its own database (pgfeed_bench_SCALE),
    seeded once and reused by later runs.

    \b
    Example:
        pgfeed bench --scale small --output bench-small.json
        pgfeed bench --scale tiny --json | jq .latency
        pgfeed bench --scale large --clients 4
    """
    from . import bench as bench_module

    options = bench_module.Options(scale=scale, clients=clients or 2 * (os.cpu_count() or 1), samples=samples,
                                   seconds=seconds, seed=seed_value, rebuild=rebuild,
                                   embeddings=not no_embeddings)
    bar, progress = progress_bar()
    with bar:
        report = bench_module.run(database.configured_dsn(dsn), data_dir, options, progress)
    if output_path:
        output_path.write_text(json.dumps(report, indent=2, default=str))
    if as_json:
        echo_json(report)
        return
    out = console()
    table = plain_table("measure", ("result", "right"),
                        title=f"pgfeed bench, scale {scale} ({report['machine']['cores']} cores, "
                              f"PostgreSQL {report['postgresql']}, pgvector {report['pgvector']})")
    for name, value in bench_module.summary_rows(report):
        table.add_row(esc(name), esc(value))
    out.print(table)
    if output_path:
        out.print(esc(f"wrote {output_path}"))


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
        pgfeed eval --dataset ml100k ./ml-100k
        pgfeed eval --dataset csv my-events.csv --profile hybrid --json
    """
    import inspect

    from . import eval_feed, evaluate

    server_dsn = Context(dsn, data_dir).dsn
    kwargs = dict(dataset=dataset, k=k, seed=seed_value, profile=profile, keep=keep)
    try:
        if "progress" in inspect.signature(eval_feed.run).parameters:
            bar, report_progress = progress_bar()
            with bar:
                report = eval_feed.run(path, server_dsn, progress=report_progress, **kwargs)
        else:
            with spinner(f"evaluating on {path.name}"):
                report = eval_feed.run(path, server_dsn, **kwargs)
    except (ValueError, OSError) as exc:
        raise PgfeedError(str(exc))
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(evaluate.format_report(report), nl=False)


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Entry point (the pgfeed script): PgfeedGroup.main does the error handling."""
    cli.main(args=argv, prog_name="pgfeed")


if __name__ == "__main__":
    main()
