"""The pgfeed command line: the table of contents. Thin by design: every
command calls SQL and prints; none ranks, filters or scores.

The commands live in modules by verb group; what they share (the database
resolution, the one error format ``pgfeed: error [SQLSTATE]: message``, the exit
codes, --json, progress) is in cli_common.py and documented in docs/cli.md:

    cli_server.py   migrate, status, server start|stop|status|url
    cli_feed.py     feed, explain, similar
    cli_jobs.py     heartbeat, maintenance, recs build
    cli_rebuild.py  rebuild-counters
    cli_data.py     seed, import
    cli_config.py   settings list|get|set|reset, profiles list|show|set|reset
    cli_health.py   doctor
    cli_tour.py     demo, bench, eval
    cli_schedule.py schedule install|list|remove (pg_cron)
    cli_experiments.py experiments create|start|stop|list|results
    cli_adopt.py    adopt posts|follows|blocks|members|list
    report.py       report --html

A new command goes in a module of its own and is registered with one
``cli.add_command(...)`` line below.
"""

from __future__ import annotations

import click

from . import __version__
from .cli_common import (  # noqa: F401 - re-exported: tests and other modules import them from here
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_MIGRATED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Context,
    NotMigrated,
    PgfeedError,
    PgfeedGroup,
    console,
    dsn_options,
    echo_json,
    esc,
    human_duration,
    humanize_timedeltas,
    json_option,
    progress_bar,
    spinner,
)
from . import cli_adopt, cli_config, cli_data, cli_experiments, cli_feed, cli_health, cli_jobs, cli_rebuild, cli_schedule, cli_server, cli_tour, report
from .cli_feed import fetch_page, page_table, top_reasons  # noqa: F401 - used by demo.py

__all__ = [  # what other modules and the tests import from here
    "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_NOT_MIGRATED", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE",
    "Context", "NotMigrated", "PgfeedError", "PgfeedGroup", "cli", "console", "dsn_options", "echo_json", "esc",
    "fetch_page", "human_duration", "humanize_timedeltas", "json_option", "main", "page_table", "progress_bar",
    "spinner", "top_reasons",
]


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
# the commands, one line each
cli.add_command(cli_server.migrate)
cli.add_command(cli_server.status)
cli.add_command(cli_server.server)
cli.add_command(cli_feed.feed)
cli.add_command(cli_feed.explain)
cli.add_command(cli_feed.similar)
cli.add_command(cli_jobs.heartbeat)
cli.add_command(cli_jobs.maintenance)
cli.add_command(cli_jobs.recs)
cli.add_command(cli_rebuild.rebuild_counters)
cli.add_command(cli_data.seed)
cli.add_command(cli_data.import_)
cli.add_command(cli_config.settings)
cli.add_command(cli_config.profiles)
cli.add_command(cli_health.doctor)
cli.add_command(cli_tour.demo)
cli.add_command(cli_tour.bench)
cli.add_command(cli_tour.eval_)
cli.add_command(cli_schedule.schedule)
cli.add_command(cli_experiments.experiments)
cli.add_command(report.report)
cli.add_command(cli_adopt.adopt)


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Entry point (the pgfeed script): PgfeedGroup.main does the error handling."""
    cli.main(args=argv, prog_name="pgfeed")


if __name__ == "__main__":
    main()
