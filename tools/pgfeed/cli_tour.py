"""The tour and measurement: pgfeed demo, bench, eval."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from . import database
from .cli_common import (
    Context,
    PgfeedError,
    console,
    dsn_options,
    echo_json,
    esc,
    json_option,
    plain_table,
    progress_bar,
    spinner,
)


@click.command()
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--posts", type=int, default=20000, show_default=True)
@click.option("--interactions", type=int, default=150000, show_default=True)
@click.option("--seed", "seed_value", type=int, default=7, show_default=True)
@click.option("--user", "viewer", type=int, default=None, help="Whose feed to show (default: an active viewer).")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the HTML report of the demo world here (default: pgfeed-demo-report.html in the"
                   " temporary directory).")
@dsn_options
def demo(users, posts, interactions, seed_value, viewer, report_path, dsn, data_dir):
    """The tour: migrate, seed a world, rank a feed with its reasons, react to a like.

    It works in the database every other command uses (the embedded
    server's database pgfeed unless --dsn or the environment names one),
    migrating it and replacing pgfeed's data there (settings and profiles
    stay), so that `pgfeed feed`, `pgfeed doctor` and the rest see the demo
    world afterwards.

    \b
    Example:
        pgfeed demo
        pgfeed demo --users 500 --posts 5000 --interactions 30000
    """
    from .demo import run_demo

    run_demo(dsn=database.configured_dsn(dsn), data_dir=data_dir, users=users, posts=posts,
             interactions=interactions, seed=seed_value, viewer=viewer, out=console(), show_dsn=bool(dsn),
             report_path=report_path)


@click.command()
@click.option("--scale", type=click.Choice(["tiny", "small", "medium", "large"]), default="small", show_default=True,
              help="small 1k users/10k posts/100k interactions; medium x10; large x100 (5M impressions).")
@click.option("--clients", type=click.IntRange(1), default=None, help="Concurrent clients (default 2 x cores).")
@click.option("--samples", type=click.IntRange(10), default=1000, show_default=True, help="Feed calls per latency figure.")
@click.option("--seconds", type=click.FloatRange(1), default=10, show_default=True, help="Length of each throughput run.")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True)
@click.option("--rebuild", is_flag=True, help="Seed the world again even if this database holds it.")
@click.option("--no-embeddings", is_flag=True, help="A world without embeddings (no taste vectors, no similar_posts).")
@click.option("--output", "-o", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every figure, as JSON, to this file.")
@dsn_options
@json_option
def bench(scale, clients, samples, seconds, seed_value, rebuild, no_embeddings, output_path, dsn, data_dir, as_json):
    """Benchmark the feed, the writes, the heartbeat and the batch jobs, with the floor.

    On the embedded server each scale gets its own database (pgfeed_bench_SCALE),
    seeded once and reused by later runs.

    \b
    Example:
        pgfeed bench --scale small --output bench-small.json
        pgfeed bench --scale tiny --json | jq .latency
        pgfeed bench --scale large --clients 4
    """
    from . import bench as bench_module

    options = bench_module.Options(scale=scale, clients=clients or 2 * (os.cpu_count() or 1), samples=samples,
                                   seconds=seconds, seed=seed_value, rebuild=rebuild,
                                   embeddings=not no_embeddings)
    bar, progress = progress_bar()
    with bar:
        report = bench_module.run(database.configured_dsn(dsn), data_dir, options, progress)
    if output_path:
        output_path.write_text(json.dumps(report, indent=2, default=str))
    if as_json:
        echo_json(report)
        return
    out = console()
    table = plain_table("measure", ("result", "right"),
                        title=f"pgfeed bench, scale {scale} ({report['machine']['cores']} cores, "
                              f"PostgreSQL {report['postgresql']}, pgvector {report['pgvector']})")
    for name, value in bench_module.summary_rows(report):
        table.add_row(esc(name), esc(value))
    out.print(table)
    if output_path:
        out.print(esc(f"wrote {output_path}"))


@click.command("eval")
@click.option("--dataset", type=click.Choice(["ml100k", "csv"]), default="ml100k", show_default=True,
              help="ml100k: a MovieLens directory (u.data, u.item, u.genre); csv: user,item,rating|weight,timestamp.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--k", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--profile", "profiles", multiple=True, default=("relevance",), show_default=True,
              help="The ranking profile the feed uses (repeatable: each is reported).")
@click.option("--seed", "seed_value", type=int, default=42, show_default=True, help="Seed of the split.")
@click.option("--seeds", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Repeat over this many seeds (SEED, SEED+1, ...) and report mean and spread.")
@click.option("--split", "split_method", type=click.Choice(["random", "time"]), default="random", show_default=True,
              help="random: seeded global 80/20; time: per viewer, their latest 20% by time are the test set.")
@click.option("--baselines", is_flag=True,
              help="Also MostPop, ItemKNN (cosine, BM25), EASE and ALS on the same split, tuned on a validation "
                   "split of the training part (needs the extra: pip install '.[eval]').")
@click.option("--validation", is_flag=True,
              help="Evaluate on the validation split carved from the training part (for tuning; the test part "
                   "is not loaded).")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override a feed setting before the build (repeatable).")
@click.option("--keep", is_flag=True, help="Keep the scratch database (its DSN is printed).")
@dsn_options
@json_option
def eval_(dataset, path, k, profiles, seed_value, seeds, split_method, baselines, validation, overrides, keep,
          dsn, data_dir, as_json):
    """Offline evaluation: P@k, R@k and NDCG@k of the real feed on held-out interactions.

    Loads the data into a scratch database, splits it (seeded), builds
    recommendations on the training part, asks feed.get_personalized_feed for
    every test user and scores it beside most-popular and random baselines
    measured by the same harness (and, with --baselines, strong baselines
    tuned on a validation split of the training part), and the published
    numbers.

    \b
    Example:
        pgfeed eval --dataset ml100k ./ml-100k
        pgfeed eval ./ml-100k --baselines --seeds 5 --split time
        pgfeed eval --dataset csv my-events.csv --profile hybrid --json
    """
    from . import eval_feed, evaluate

    settings = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--set")
        settings[name.strip()] = value.strip()
    if baselines:
        from . import baselines as baselines_module

        try:
            baselines_module.require()
        except baselines_module.BaselinesUnavailable as exc:
            raise PgfeedError(str(exc))
    server_dsn = Context(dsn, data_dir).dsn
    options = dict(dataset=dataset, k=k, profile=list(profiles), keep=keep, split=split_method,
                   baselines=baselines, validation=validation, settings=settings)
    try:
        with spinner(f"evaluating on {path.name}"):
            if seeds > 1:
                report = eval_feed.run_seeds(path, server_dsn, [seed_value + n for n in range(seeds)], **options)
            else:
                report = eval_feed.run(path, server_dsn, seed=seed_value, **options)
    except (ValueError, OSError) as exc:
        raise PgfeedError(str(exc))
    if as_json:
        echo_json(report.as_dict())
    elif seeds > 1:
        click.echo(evaluate.format_multi_report(report), nl=False)
    else:
        click.echo(evaluate.format_report(report), nl=False)
