"""`pgfeed rebuild-counters`: recompute every engine-maintained counter and signal from the logs.

A module of its own (one small module per verb group); tools/pgfeed/cli.py registers
it with one `cli.add_command` line. It imports cli.py only when it runs, so that
`python -m pgfeed.cli` (which loads cli.py as __main__) can import it at the bottom.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


@click.command("rebuild-counters")
@click.option("--dsn", help="PostgreSQL connection string (default: $PGFEED_DSN or $DATABASE_URL, "
                            "else the embedded server).")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PGFEED_DATA_DIR",
              help="Data directory of the embedded server.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def rebuild_counters(dsn, data_dir, as_json):
    """Recompute every engine-maintained counter and signal from the logs.

    Runs feed.rebuild_counters() (contract §3.3) and prints what it changed, as
    counts: posts whose counters changed, and per derived table the rows added,
    removed or changed. Run it after a restore, a repair, or an upgrade that
    changed what a counter means. It locks the derived tables until it commits:
    run it off-peak.

    \b
    Example:
        pgfeed rebuild-counters --dsn postgresql://admin@db/app
    """
    from .cli import Context

    with Context(dsn, data_dir).connect() as conn:
        started = time.perf_counter()
        result = conn.execute("SELECT feed.rebuild_counters()").fetchone()[0]
        elapsed = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps(dict(result, seconds=round(elapsed, 3))))
    else:
        changed = " ".join(f"{name}={count}" for name, count in result.items())
        click.echo(f"rebuild-counters: {changed} ({elapsed:.2f}s)")
