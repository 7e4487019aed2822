"""`pgfeed experiments`: A/B tests and feature flags (contract §8,
docs/experiments.md). Thin: every command is one statement on feed.experiments
or one call of feed.experiment_results; the table's trigger does the checking."""

from __future__ import annotations

import json

import click

from .cli_options import connect, console, dsn_options, echo_json, json_option


@click.group()
def experiments():
    """A/B tests and feature flags: create, start, stop, list, results."""


def _variants(variants_json: str | None, rollout: float | None, profile: str | None,
              settings_json: str | None) -> dict:
    if variants_json:
        if rollout is not None or profile or settings_json:
            raise click.UsageError("give either --variants, or a flag (--rollout with --profile/--settings)")
        try:
            value = json.loads(variants_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--variants") from exc
        return value
    if rollout is None:
        raise click.UsageError("give --variants JSON, or --rollout PERCENT for a feature flag")
    if not 0 < rollout < 100:
        if rollout == 100:
            raise click.BadParameter("a 100% rollout is a setting or profile change, not an experiment",
                                     param_hint="--rollout")
        raise click.BadParameter("must be between 0 and 100 (exclusive)", param_hint="--rollout")
    on: dict = {"weight": rollout}
    if profile:
        on["profile"] = profile
    if settings_json:
        try:
            on["settings"] = json.loads(settings_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--settings") from exc
    if len(on) == 1:
        raise click.UsageError("a flag needs what it turns on: --profile and/or --settings")
    return {"on": on, "control": {"weight": 100 - rollout}}


@experiments.command("create")
@click.argument("name")
@click.option("--variants", "variants_json",
              help='Variants as JSON: {"control": {"weight": 50}, "treatment": {"weight": 50, "profile": "hybrid"}}.')
@click.option("--rollout", type=float, default=None,
              help="A feature flag: this percentage of viewers get variant `on`, the rest `control`.")
@click.option("--profile", help="Flag: the profile variant `on` uses.")
@click.option("--settings", "settings_json", help='Flag: settings variant `on` overrides, e.g. \'{"epsilon": 0.2}\'.')
@click.option("--salt", help="Seeds the assignment (default: the name). Same salt, same split.")
@click.option("--description", default="", help="What it tests, for the list.")
@click.option("--start", is_flag=True, help="Start it at once (status running).")
@dsn_options
@json_option
def experiments_create(name, variants_json, rollout, profile, settings_json, salt, description, start, dsn, data_dir,
                       as_json):
    """Create an experiment (a draft unless --start).

    \b
    Examples:
        pgfeed experiments create hybrid-test \\
            --variants '{"control": {"weight": 50}, "hybrid": {"weight": 50, "profile": "hybrid"}}'
        pgfeed experiments create more-exploration --rollout 10 --settings '{"epsilon": 0.2}' --start
    """
    variants = _variants(variants_json, rollout, profile, settings_json)
    with connect(dsn, data_dir) as conn:
        row = conn.execute(
            "INSERT INTO feed.experiments (name, variants, status, salt, description) VALUES (%s, %s, %s, %s, %s)"
            " RETURNING name, status, variants", [name, json.dumps(variants), "running" if start else "draft", salt,
                                                  description]).fetchone()
    if as_json:
        echo_json({"name": row[0], "status": row[1], "variants": row[2]})
    else:
        click.echo(f"experiment {row[0]}: {row[1]}, variants {', '.join(sorted(row[2]))}")


def _set_status(name: str, status: str, dsn, data_dir, as_json: bool) -> None:
    with connect(dsn, data_dir) as conn:
        row = conn.execute("UPDATE feed.experiments SET status = %s WHERE name = %s"
                           " RETURNING name, status, started_at, stopped_at", [status, name]).fetchone()
    if row is None:
        raise click.ClickException(f"no experiment named {name!r} (pgfeed experiments list)")
    if as_json:
        echo_json(dict(zip(("name", "status", "started_at", "stopped_at"), row)))
    else:
        click.echo(f"experiment {row[0]}: {row[1]}")


@experiments.command("start")
@click.argument("name")
@dsn_options
@json_option
def experiments_start(name, dsn, data_dir, as_json):
    """Start an experiment; refused when it overlaps a running one."""
    _set_status(name, "running", dsn, data_dir, as_json)


@experiments.command("stop")
@click.argument("name")
@dsn_options
@json_option
def experiments_stop(name, dsn, data_dir, as_json):
    """Stop an experiment: new sessions no longer get its variants (results stay)."""
    _set_status(name, "stopped", dsn, data_dir, as_json)


@experiments.command("list")
@dsn_options
@json_option
def experiments_list(dsn, data_dir, as_json):
    """Every experiment, running ones first."""
    columns = ("name", "status", "variants", "salt", "started_at", "stopped_at", "description")
    with connect(dsn, data_dir) as conn:
        rows = [dict(zip(columns, r)) for r in conn.execute(
            "SELECT name, status, variants, salt, started_at, stopped_at, description FROM feed.experiments"
            " ORDER BY status <> 'running', status, name").fetchall()]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no experiments (pgfeed experiments create --help)")
        return
    from rich.table import Table

    table = Table(title="experiments")
    for column in ("name", "status", "variants", "started", "stopped", "description"):
        table.add_column(column)
    for r in rows:
        variants = ", ".join(f"{k} ({v.get('weight')})" + (f" profile={v['profile']}" if "profile" in v else "")
                             + (f" settings={json.dumps(v['settings'])}" if "settings" in v else "")
                             for k, v in sorted(r["variants"].items()))
        table.add_row(r["name"], r["status"], variants, str(r["started_at"] or ""), str(r["stopped_at"] or ""),
                      r["description"])
    console().print(table)


@experiments.command("results")
@click.argument("name")
@dsn_options
@json_option
def experiments_results(name, dsn, data_dir, as_json):
    """Per variant: viewers, impressions, engagements, rate and its 95% interval.

    Two variants differ credibly when their intervals do not overlap
    (docs/experiments.md says how to read them).
    """
    columns = ("variant", "viewers", "impressions", "engagements", "engagement_rate", "ci_low", "ci_high")
    with connect(dsn, data_dir) as conn:
        rows = [dict(zip(columns, r)) for r in conn.execute(
            "SELECT * FROM feed.experiment_results(%s)", [name]).fetchall()]
    if as_json:
        echo_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"experiment {name}")
    for column in ("variant", "viewers", "impressions", "engagements", "rate", "95% interval"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in rows:
        rate = "-" if r["engagement_rate"] is None else f"{100 * r['engagement_rate']:.2f}%"
        ci = "-" if r["ci_low"] is None else f"{100 * r['ci_low']:.2f}% – {100 * r['ci_high']:.2f}%"
        table.add_row(r["variant"], str(r["viewers"]), str(r["impressions"]), str(r["engagements"]), rate, ci)
    console().print(table)
