"""Health: pgfeed doctor."""

from __future__ import annotations

import sys

import click

from .cli_common import (
    Context,
    EXIT_FAILURE,
    console,
    dsn_options,
    echo_json,
    esc,
    humanize_timedeltas,
    json_option,
    plain_table,
)


@click.command()
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
