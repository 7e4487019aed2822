"""The pgfeed command line. Thin by design: it calls SQL and prints; it never ranks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__, database, install

DSN_HELP = "PostgreSQL DSN. Default: $PGFEED_DSN, then $DATABASE_URL, then the embedded server."
DATA_DIR_HELP = "Data directory of the embedded server. Default: $PGFEED_DATA_DIR or a per-user directory."


class Context:
    def __init__(self, dsn: str | None, data_dir: Path | None):
        self.dsn_option = dsn
        self.data_dir = data_dir
        self._dsn: str | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            self._dsn = database.resolve_dsn(self.dsn_option, self.data_dir)
        return self._dsn


def dsn_options(func):
    func = click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help=DATA_DIR_HELP)(func)
    func = click.option("--dsn", help=DSN_HELP)(func)
    return func


def _context(dsn, data_dir) -> Context:
    return Context(dsn, data_dir)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pgfeed")
def cli():
    """pgfeed: a personalized feed-ranking engine inside PostgreSQL.

    \b
    Example:
        pgfeed migrate                 # install into the embedded server
        pgfeed migrate --dsn postgresql://app@db/app
    """


# ---------------------------------------------------------------------------
@cli.command()
@dsn_options
@click.option("--sql", "print_sql", is_flag=True, help="Print the SQL instead of running it, for review.")
@click.option("--embedding-dim", type=click.IntRange(1, install.MAX_EMBEDDING_DIM), default=None,
              help="Dimension of feed.posts.embedding, chosen at install (default 384).")
@click.option("--force-functions", is_flag=True, help="Re-apply sql/functions even if unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def migrate(dsn, data_dir, print_sql, embedding_dim, force_functions, as_json):
    """Bring the database to head: schema revisions, then the SQL functions.

    Safe to run again (a no-op at head) and from two places at once (an
    advisory lock serializes them); a failure leaves the database unchanged.

    \b
    Example:
        pgfeed migrate
        pgfeed migrate --sql --dsn postgresql://app@db/app > review.sql
    """
    ctx = _context(dsn, data_dir)
    if print_sql:
        click.echo(install.migration_sql(ctx.dsn, embedding_dim), nl=False)
        return
    report = install.migrate(ctx.dsn, embedding_dim=embedding_dim, force_functions=force_functions)
    if as_json:
        click.echo(json.dumps(report.__dict__ | {"changed": report.changed}))
        return
    if report.fresh_install:
        click.echo(f"installed pgfeed schema at revision {report.revision_after}")
    elif report.revision_before != report.revision_after:
        click.echo(f"upgraded schema {report.revision_before} -> {report.revision_after}")
    else:
        click.echo(f"schema already at head ({report.revision_after})")
    if report.functions_applied:
        click.echo(f"applied {len(report.function_files)} function files")
    else:
        click.echo("functions unchanged")
    _print_status(ctx.dsn)


@cli.command()
@dsn_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(dsn, data_dir, as_json):
    """Show where the database is and what pgfeed holds there.

    \b
    Example:
        pgfeed status --json
    """
    ctx = _context(dsn, data_dir)
    _print_status(ctx.dsn, as_json)


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
        click.echo(json.dumps(info))
        return
    for key, value in info.items():
        click.echo(f"{key:>15}: {value}")


# ---------------------------------------------------------------------------
@cli.group()
def server():
    """Manage the embedded PostgreSQL server (PostgreSQL 18 + pgvector)."""


@server.command("start")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR", help=DATA_DIR_HELP)
def server_start(data_dir):
    """Start the embedded server (initializing it on first use).

    \b
    Example:
        pgfeed server start && psql "$(pgfeed server url)"
    """
    status_ = database.start_embedded(data_dir)
    click.echo(f"running (pid {status_.pid}) in {status_.data_dir}")


@server.command("stop")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR", help=DATA_DIR_HELP)
def server_stop(data_dir):
    """Stop the embedded server."""
    if database.stop_embedded(data_dir):
        click.echo("stopped")
    else:
        click.echo("not running")


@server.command("status")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def server_status(data_dir, as_json):
    """Say whether the embedded server runs; exit 3 when it does not."""
    status_ = database.embedded_status(data_dir)
    if as_json:
        click.echo(json.dumps({"running": status_.running, "pid": status_.pid, "data_dir": str(status_.data_dir),
                               "dsn": status_.dsn() if status_.running else None}))
    elif status_.running:
        click.echo(f"running (pid {status_.pid}) in {status_.data_dir}\n{status_.dsn()}")
    else:
        click.echo(f"not running (data directory {status_.data_dir})")
    if not status_.running:
        sys.exit(3)


@server.command("url")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR", help=DATA_DIR_HELP)
def server_url(data_dir):
    """Print a DSN of the embedded server that psql and psycopg accept (starts it if needed).

    \b
    Example:
        psql "$(pgfeed server url)" -c 'SELECT * FROM feed.settings'
    """
    click.echo(database.start_embedded(data_dir).dsn())


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
    except (database.DatabaseUnavailable, install.MigrationError) as exc:
        click.echo(f"pgfeed: error: {exc}", err=True)
        sys.exit(2)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"pgfeed: error: cannot reach the database: {first}", err=True)
        sys.exit(2)
    except psycopg.Error as exc:
        code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
        message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
        click.echo(f"pgfeed: error{code}: {message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
