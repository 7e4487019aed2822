"""Scheduled work: pgfeed heartbeat, maintenance, recs build."""

from __future__ import annotations

import sys
import time

import click

from .cli_common import (
    Context,
    dsn_options,
    echo_json,
    human_duration,
    json_option,
    spinner,
)


@click.command()
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


@click.command()
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


@click.group()
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
