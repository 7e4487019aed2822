"""Options and helpers shared by the command modules that cli.py registers
(cli_experiments, report). They must not import pgfeed.cli at import time:
cli.py imports them at its end, and `python -m pgfeed.cli` would otherwise
import it twice in a circle. The same options as cli.py's own."""

from __future__ import annotations

import json
from pathlib import Path

import click

DSN_HELP = "PostgreSQL DSN. Default: $PGFEED_DSN, then $DATABASE_URL, then the embedded server."
DATA_DIR_HELP = "Data directory of the embedded server. Default: $PGFEED_DATA_DIR or a per-user directory."


def dsn_options(func):
    func = click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
                        help=DATA_DIR_HELP)(func)
    func = click.option("--dsn", help=DSN_HELP)(func)
    return func


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(func)


def echo_json(value) -> None:
    click.echo(json.dumps(value, default=str))


def connect(dsn: str | None, data_dir: Path | None):
    """A connection to a migrated database, as every pgfeed command opens one."""
    from .cli import Context

    return Context(dsn, data_dir).connect()


def console():
    from .cli import console as make

    return make()
