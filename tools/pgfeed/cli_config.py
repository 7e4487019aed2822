"""Configuration: pgfeed settings, profiles."""

from __future__ import annotations

import json

import click

from . import install
from .cli_common import (
    Context,
    PgfeedError,
    console,
    dsn_options,
    echo_json,
    esc,
    json_option,
    plain_table,
)


@click.group()
def settings():
    """Read and change feed.settings (read by the functions at call time)."""


@settings.command("list")
@dsn_options
@json_option
def settings_list(dsn, data_dir, as_json):
    """List every setting with its value, default, type and valid range.

    \b
    Example:
        pgfeed settings list
    """
    with Context(dsn, data_dir).connect() as conn:
        rows = conn.execute("SELECT name, value, default_value, kind, min_value, max_value, description"
                            " FROM feed.settings ORDER BY name").fetchall()
    if as_json:
        echo_json([dict(zip(("name", "value", "default", "kind", "min", "max", "description"), r)) for r in rows])
        return
    table = plain_table("name", "value", "default", "type", "range", "description")
    for name, value, default, kind, low, high, description in rows:
        valid = (f"{low if low is not None else '0'} .. {high if high is not None else 'any'}"
                 + (" chars" if kind == "text" else ""))
        table.add_row(esc(name), esc(value) if value == default else f"[bold]{esc(value)}[/bold]", esc(default),
                      esc(kind), esc(valid), esc(description))
    console().print(table)


@settings.command("get")
@click.argument("name")
@dsn_options
@json_option
def settings_get(name, dsn, data_dir, as_json):
    """Print one setting's value.

    \b
    Example:
        pgfeed settings get cooldown
    """
    with Context(dsn, data_dir).connect() as conn:
        value = conn.execute("SELECT feed._setting(%s)", [name]).fetchone()[0]
    if as_json:
        echo_json({"name": name, "value": value})
    else:
        click.echo(value)


# a value may start with a dash (epsilon -1): options are only the known ones
@settings.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("value")
@dsn_options
@json_option
def settings_set(name, value, dsn, data_dir, as_json):
    """Change a setting (validated by the database: a value outside the
    setting's range is refused with 22023 and nothing changes).

    \b
    Example:
        pgfeed settings set cooldown '14 days'
        pgfeed settings set epsilon 0.05
    """
    with Context(dsn, data_dir).connect() as conn:
        conn.execute("SELECT feed._setting(%s)", [name])
        conn.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
    if as_json:
        echo_json({"name": name, "value": value})
    else:
        click.echo(f"{name} = {value}")


@settings.command("reset")
@click.argument("name")
@dsn_options
@json_option
def settings_reset(name, dsn, data_dir, as_json):
    """Put a setting back to its default.

    \b
    Example:
        pgfeed settings reset epsilon
    """
    with Context(dsn, data_dir).connect() as conn:
        conn.execute("SELECT feed._setting(%s)", [name])
        value = conn.execute("UPDATE feed.settings SET value = default_value WHERE name = %s RETURNING value",
                             [name]).fetchone()[0]
    if as_json:
        echo_json({"name": name, "value": value})
    else:
        click.echo(f"{name} = {value}")


@click.group()
def profiles():
    """Ranking profiles: weights, source quotas and parameters, changeable without a deploy."""


@profiles.command("list")
@dsn_options
@json_option
def profiles_list(dsn, data_dir, as_json):
    """List the ranking profiles.

    \b
    Example:
        pgfeed profiles list
    """
    with Context(dsn, data_dir).connect() as conn:
        rows = conn.execute("SELECT name, description, weights, source_quotas, params FROM feed.ranking_profiles"
                            " ORDER BY name").fetchall()
    if as_json:
        echo_json([dict(zip(("name", "description", "weights", "source_quotas", "params"), r)) for r in rows])
        return
    table = plain_table("name", "weights", "quotas", "description")
    for name, description, weights, quotas, _params in rows:
        table.add_row(esc(name), esc(", ".join(f"{k} {v}" for k, v in (weights or {}).items())),
                      esc(", ".join(f"{k} {v}" for k, v in (quotas or {}).items())), esc(description))
    console().print(table)


@profiles.command("show")
@click.argument("name")
@dsn_options
@json_option
def profiles_show(name, dsn, data_dir, as_json):
    """Print one profile as JSON (with or without --json).

    \b
    Example:
        pgfeed profiles show social
    """
    with Context(dsn, data_dir).connect() as conn:
        row = conn.execute("SELECT to_jsonb(r) - 'updated_at' FROM feed.ranking_profiles r WHERE name = %s",
                           [name]).fetchone()
    if row is None:
        raise PgfeedError(f"unknown profile {name!r}; pgfeed profiles list shows them")
    click.echo(json.dumps(row[0]) if as_json else json.dumps(row[0], indent=2))


def _pairs(values: tuple[str, ...], option: str) -> dict:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=NUMBER", param_hint=option)
        try:
            result[key.strip()] = None if value.strip().lower() == "null" else float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number", param_hint=option)
    return result


@profiles.command("set")
@click.argument("name")
@click.option("--weight", "weights", multiple=True, help="COMPONENT=WEIGHT (0 removes it).")
@click.option("--quota", "quotas", multiple=True, help="SOURCE=SHARE of the page.")
@click.option("--param", "params", multiple=True, help="PARAM=VALUE.")
@click.option("--description", help="A new description.")
@dsn_options
@json_option
def profiles_set(name, weights, quotas, params, description, dsn, data_dir, as_json):
    """Create or change a profile; values merge into what is there.

    \b
    Example:
        pgfeed profiles set default --weight recency=0.4 --weight novelty=0
        pgfeed profiles set mine --weight trending=1 --quota following=0.5
    """
    from psycopg.types.json import Jsonb

    with Context(dsn, data_dir).connect() as conn:
        conn.execute(
            "INSERT INTO feed.ranking_profiles AS r (name, description, weights, source_quotas, params)"
            " VALUES (%(name)s, coalesce(%(description)s, 'custom profile'), jsonb_strip_nulls(%(w)s),"
            "         jsonb_strip_nulls(%(q)s), %(p)s)"
            " ON CONFLICT (name) DO UPDATE SET"
            "   description = coalesce(%(description)s, r.description),"
            "   weights = (SELECT coalesce(jsonb_object_agg(key, value), '{}') FROM jsonb_each(r.weights || %(w)s)"
            "              WHERE value <> '0'::jsonb),"
            "   source_quotas = (SELECT coalesce(jsonb_object_agg(key, value), '{}')"
            "                    FROM jsonb_each(r.source_quotas || %(q)s) WHERE value <> '0'::jsonb),"
            "   params = r.params || %(p)s, updated_at = now()",
            {"name": name, "description": description, "w": Jsonb(_pairs(weights, "--weight")),
             "q": Jsonb(_pairs(quotas, "--quota")), "p": Jsonb(_pairs(params, "--param"))})
        saved = conn.execute("SELECT to_jsonb(r) - 'updated_at' FROM feed.ranking_profiles r WHERE name = %s",
                             [name]).fetchone()[0]
    if as_json:
        echo_json(saved)
    else:
        click.echo(f"profile {name} saved")


@profiles.command("reset")
@click.argument("name")
@dsn_options
@json_option
def profiles_reset(name, dsn, data_dir, as_json):
    """Restore a shipped profile to its shipped values.

    \b
    Example:
        pgfeed profiles reset default
    """
    ctx = Context(dsn, data_dir)
    with ctx.connect() as conn:
        if not conn.execute("DELETE FROM feed.ranking_profiles WHERE name = %s RETURNING 1", [name]).fetchone():
            raise PgfeedError(f"unknown profile {name!r}")
    install.migrate(ctx.dsn, force_functions=True)
    with ctx.connect() as conn:
        if conn.execute("SELECT 1 FROM feed.ranking_profiles WHERE name = %s", [name]).fetchone() is None:
            raise PgfeedError(f"{name!r} is not a shipped profile; it was deleted")
    if as_json:
        echo_json({"name": name, "restored": True})
    else:
        click.echo(f"profile {name} restored")
