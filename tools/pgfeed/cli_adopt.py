"""pgfeed adopt: keep feed.* in step with the application's own tables (docs/adopt.md).

The SQL is written by the database (feed.adopt_sql): triggers on the app's table,
their function and a one-time backfill. This command runs that text in one
transaction with the rights of its own connection, or prints it (--sql) for
psql; both paths execute the same text, so they end in the same state.
"""

from __future__ import annotations

import json

import click

from .cli_common import Context, PgfeedError, console, dsn_options, echo_json, esc, json_option, plain_table

# kind -> (option name, help) in the order --help shows them; the first two are required
KINDS: dict[str, list[tuple[str, str]]] = {
    "posts": [
        ("id", "column holding the post id (integer)"),
        ("author", "column holding the author's user id (integer)"),
        ("created-at", "column holding when the post was made (default: when it reaches the feed)"),
        ("category", "column holding the category (empty or null: --category-default)"),
        ("post-type", "column holding the post type (empty or null: --post-type-default)"),
        ("collective", "column holding the collective (group) id"),
        ("visibility", "column holding public / shadow_ban / removed"),
        ("deleted", "soft-delete column: a boolean, or a timestamp that is not null when deleted"),
        ("media-ready", "boolean column: the post's media can be shown"),
        ("duration-ms", "column holding a video's length in milliseconds"),
        ("category-default", "category of a post without one (a value, not a column; default general)"),
        ("post-type-default", "type of a post without one (a value, not a column; default post)"),
    ],
    "follows": [
        ("follower", "column holding the user who follows"),
        ("followee", "column holding the user followed"),
        ("created-at", "column holding since when"),
    ],
    "blocks": [
        ("user", "column holding the user who blocks"),
        ("blocked", "column holding the user blocked"),
        ("created-at", "column holding since when"),
    ],
    "members": [
        ("collective", "column holding the collective (group, community) id"),
        ("user", "column holding the member's user id"),
        ("joined-at", "column holding since when"),
    ],
}

TARGET = {"posts": "feed.posts", "follows": "feed.follows", "blocks": "feed.blocks",
          "members": "feed.collective_members"}

EXAMPLES = {
    "posts": "pgfeed adopt posts --table public.app_post --id id --author author_id \\\n"
             "            --created-at created_at --category topic --deleted deleted_at",
    "follows": "pgfeed adopt follows --table public.app_follow --follower from_user --followee to_user",
    "blocks": "pgfeed adopt blocks --table public.app_block --user blocker_id --blocked blocked_id",
    "members": "pgfeed adopt members --table public.app_membership --collective group_id --user user_id",
}


def resolve_table(conn, name: str) -> int:
    """The oid of the table named as in SQL (schema.table, quoted where needed),
    resolved with the connection's own search_path."""
    import psycopg

    try:
        row = conn.execute("SELECT pg_catalog.to_regclass(%s)::oid", [name]).fetchone()
    except psycopg.Error as exc:
        raise PgfeedError(f"--table: {name!r} is not a table name ({exc.diag.message_primary or exc}); "
                          "name it as in SQL, e.g. public.app_post or '\"My Schema\".\"Posts\"'", "22023") from None
    if row is None or row[0] is None:
        raise PgfeedError(f"--table: no table {name!r} in this database (name it as in SQL, schema.table, "
                          "with double quotes around mixed-case names)", "22023")
    return row[0]


def adopt_statements(conn, kind: str, table: str, columns: dict, remove: bool) -> str:
    """The SQL feed.adopt_sql writes for this table (validated by the database)."""
    oid = resolve_table(conn, table)
    return conn.execute("SELECT feed.adopt_sql(%s, %s::oid::regclass, %s::jsonb, %s)",
                        [kind, oid, json.dumps(columns), remove]).fetchone()[0]


def script(statements: str) -> str:
    """The text --sql prints: one transaction, applied with `psql -v ON_ERROR_STOP=1 -f`."""
    return "BEGIN;\n" + statements.rstrip() + "\nCOMMIT;\n"


def _make_command(kind: str) -> click.Command:
    options = KINDS[kind]

    def run(table, sql_only, remove, dsn, data_dir, as_json, **mapping):
        columns = {name.replace("-", "_"): mapping[name.replace("-", "_")]
                   for name, _ in options if mapping.get(name.replace("-", "_")) is not None}
        ctx = Context(dsn, data_dir)
        with ctx.connect() as conn:
            statements = adopt_statements(conn, kind, table, columns, remove)
            if sql_only:
                click.echo(script(statements), nl=False)
                return
            with conn.transaction():
                cursor = conn.execute(statements)
                # the text ends with the backfill: the last result's row count is what it copied
                last = cursor.rowcount
                while cursor.nextset():
                    last = cursor.rowcount
                backfilled = 0 if remove else max(last, 0)
        result = {"kind": kind, "table": table, "target": TARGET[kind],
                  "action": "removed" if remove else "adopted", "backfilled": backfilled}
        if as_json:
            echo_json(result)
        elif remove:
            click.echo(f"removed the triggers that kept {TARGET[kind]} in step with {table}")
        else:
            click.echo(f"adopted {table}: its inserts, updates and deletes now reach {TARGET[kind]}; "
                       f"backfilled {backfilled} row{'s' if backfilled != 1 else ''}")

    run.__doc__ = (f"""Keep {TARGET[kind]} in step with your own {kind} table.

    Installs an AFTER INSERT/UPDATE/DELETE trigger on TABLE and its function
    (in TABLE's schema), then copies the rows already there (running it again
    replaces the triggers and copies nothing twice). The first two column
    options are required. --sql prints the SQL instead; --remove drops the
    triggers (feed.* keeps its rows).

    \b
    Example:
        {EXAMPLES[kind]}
        pgfeed adopt {kind} --table ... --sql > adopt.sql && psql -v ON_ERROR_STOP=1 -f adopt.sql
    """)
    command = json_option(dsn_options(run))
    for name, help_text in reversed(options):
        command = click.option(f"--{name}", name.replace("-", "_"), metavar="COLUMN" if "default" not in name
                               else "VALUE", help=help_text)(command)
    command = click.option("--remove", is_flag=True, help="Drop the triggers and their function instead.")(command)
    command = click.option("--sql", "sql_only", is_flag=True,
                           help="Print the SQL (one transaction, for psql) instead of running it.")(command)
    command = click.option("--table", required=True, metavar="TABLE",
                           help="Your table, named as in SQL: schema.table (quote mixed-case names).")(command)
    return click.command(kind)(command)


@click.group()
def adopt():
    """Keep pgfeed's tables in step with your own posts, follows, blocks and memberships.

    \b
    Example:
        pgfeed adopt posts --table public.app_post --id id --author author_id --created-at created_at
        pgfeed adopt follows --table public.app_follow --follower follower_id --followee followee_id
        pgfeed adopt list
    """


for _kind in KINDS:
    adopt.add_command(_make_command(_kind))


@adopt.command("list")
@dsn_options
@json_option
def list_(dsn, data_dir, as_json):
    """The tables adopted in this database and their column mappings.

    \b
    Example:
        pgfeed adopt list --json
    """
    ctx = Context(dsn, data_dir)
    with ctx.connect() as conn:
        rows = conn.execute("SELECT kind, table_name, trigger_name, function_name, columns"
                            " FROM feed.adopted_tables()").fetchall()
    items = [{"kind": r[0], "table": r[1], "trigger": r[2], "function": r[3], "columns": r[4]} for r in rows]
    if as_json:
        echo_json(items)
        return
    if not items:
        click.echo("no table adopted in this database")
        return
    table = plain_table("kind", "table", "columns", "trigger function")
    for item in items:
        table.add_row(esc(item["kind"]), esc(item["table"]),
                      esc(", ".join(f"{k}={v}" for k, v in item["columns"].items())), esc(item["function"]))
    console().print(table)
