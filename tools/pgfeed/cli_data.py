"""Data: pgfeed seed, import."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .cli_common import (
    Context,
    PgfeedError,
    dsn_options,
    echo_json,
    human_duration,
    json_option,
    progress_bar,
)


@click.command()
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


@click.command("import")
@click.argument("kind", type=click.Choice(["interactions", "posts", "follows"]))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@dsn_options
@json_option
def import_(kind, path, dsn, data_dir, as_json):
    """Bulk-load a CSV file (with a header naming the columns) in one transaction.

    A bad row is reported with its line number and nothing is imported.
    Importing the same file again changes nothing: posts are upserted by
    post_id, follows already there are skipped, and interactions already in
    the log (same values and created_at) are skipped; one without created_at
    is skipped when the same file (or its beginning, up to and including that
    row) was imported before. docs/cli.md lists the columns of each kind.

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
