"""Options and helpers shared by the command modules that cli.py registers
(cli_experiments, report): cli_common's, under the names those modules use.
cli_common never imports pgfeed.cli, so importing it here cannot close a
circle when `python -m pgfeed.cli` runs."""

from __future__ import annotations

from pathlib import Path

from .cli_common import DATA_DIR_HELP, DSN_HELP, Context, console, dsn_options, echo_json, json_option

__all__ = ["DATA_DIR_HELP", "DSN_HELP", "connect", "console", "dsn_options", "echo_json", "json_option"]


def connect(dsn: str | None, data_dir: Path | None):
    """A connection to a migrated database, as every pgfeed command opens one."""
    return Context(dsn, data_dir).connect()
