"""Installing, status and the embedded server: pgfeed migrate, status, server."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import database, install
from .cli_common import (
    Context,
    DATA_DIR_HELP,
    EXIT_UNAVAILABLE,
    dsn_options,
    echo_json,
    human_duration,
    json_option,
    server_progress,
)


@click.command()
@dsn_options
@click.option("--sql", "print_sql", is_flag=True, help="Print the SQL instead of running it, for review.")
@click.option("--embedding-dim", type=click.IntRange(1, install.MAX_EMBEDDING_DIM), default=None,
              help="Dimension of feed.posts.embedding, chosen at install (default 384).")
@click.option("--force-functions", is_flag=True, help="Re-apply sql/functions even if unchanged.")
@click.option("--no-distribute", is_flag=True,
              help="On a Citus coordinator with workers, install without distributing (a later migrate does).")
@json_option
def migrate(dsn, data_dir, print_sql, embedding_dim, force_functions, no_distribute, as_json):
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
    report = install.migrate(ctx.dsn, embedding_dim=embedding_dim, force_functions=force_functions,
                             distribute=not no_distribute)
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
    for line in report.repairs:
        click.echo(f"repaired: {line}")
    for line in report.repair_failures:
        click.echo(f"repair failed: {line}")
    for line in report.not_repaired:
        click.echo(f"not repaired: {line}")
    if report.repair_skipped:
        click.echo(f"repairs skipped: {report.repair_skipped}")
    if report.distributed:
        click.echo(f"distributed on the Citus cluster: {len(report.distributed)} steps"
                   f" ({', '.join(report.distributed[:3])}{', ...' if len(report.distributed) > 3 else ''})")
    if report.citus:
        click.echo(f"citus: {report.citus}")
    _print_status(ctx.dsn)


@click.command()
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


@click.group()
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
    """Say whether the embedded server runs; exit 3 when it does not (or does
    not accept connections yet: starting, or recovering after a crash).

    \b
    Example:
        pgfeed server status || pgfeed server start
    """
    status_ = database.embedded_status(data_dir)
    if as_json:
        echo_json(_server_json(status_))
    elif status_.running:
        click.echo(f"running (pid {status_.pid}) in {status_.data_dir}\n{status_.dsn()}")
    elif database.embedded_starting(data_dir):
        click.echo(f"starting, not accepting connections yet (recovering after a crash?) in {status_.data_dir};"
                   " pgfeed server start waits for it")
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
