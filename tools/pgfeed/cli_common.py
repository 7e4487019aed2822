"""What every pgfeed command shares: where the database is, the one error
format and exit codes, --json, readable output and progress.

Conventions every command follows (docs/cli.md):
- the database comes from --dsn, PGFEED_DSN, DATABASE_URL, libpq's PG* variables,
  then the embedded server (pgfeed.database.resolve_dsn);
- an error is one line on stderr, ``pgfeed: error [SQLSTATE]: message`` (the
  SQLSTATE only when the server gave one), never a traceback;
- exit codes: EXIT_OK 0, EXIT_FAILURE 1, EXIT_USAGE 2, EXIT_UNAVAILABLE 3,
  EXIT_NOT_MIGRATED 4, 130 when interrupted;
- ``--json`` prints one JSON document on stdout instead of tables;
- progress (rich) goes to stderr, and only to a terminal (or PGFEED_PROGRESS=1).
"""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from . import database, install

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
            if type(exc).__name__ == "NoArgsIsHelpError":  # `pgfeed` or `pgfeed settings` alone: the help
                click.echo(exc.format_message(), err=True)
                sys.exit(EXIT_USAGE)
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
