"""Reading the feed: pgfeed feed, explain, similar."""

from __future__ import annotations

import json

import click

from .cli_common import (
    Context,
    console,
    dsn_options,
    echo_json,
    esc,
    json_option,
    plain_table,
)


def _context_json(mode, profile, extra):
    try:
        context = json.loads(extra) if extra else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc}); e.g. '{{\"connection\": \"3g\"}}'", param_hint="--context")
    if not isinstance(context, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--context")
    if mode:
        context["mode"] = mode
    if profile:
        context["profile"] = profile
    return context


def _viewer(user: str) -> int | None:
    if user.lower() in ("anon", "anonymous", "-"):
        return None
    try:
        return int(user)
    except ValueError:
        raise click.BadParameter(f"{user!r} is not a user id (an integer, or 'anon')", param_hint="USER")


def fetch_page(conn, viewer, page_size, cursor, context) -> list[dict]:
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb

    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
            " FROM feed.get_personalized_feed(%s, %s, %s, %s)",
            [viewer, page_size, cursor, Jsonb(context)]).fetchall()


def top_reasons(reasons: dict, n: int = 3) -> str:
    reasons = reasons or {}
    contributions = reasons.get("contributions") or {}
    best = sorted(((v, k) for k, v in contributions.items() if v), reverse=True)[:n]
    text = ", ".join(f"{k} {v:.3g}" for v, k in best)
    diversity = (reasons.get("multipliers") or {}).get("author_diversity")
    if diversity is not None and diversity < 1:
        text += f", author x{diversity:.2f}"
    return text or str(reasons.get("mode", ""))


def page_table(conn, rows: list[dict], title: str):
    from rich.table import Table

    details = {}
    if rows:
        details = {r[0]: r[1:] for r in conn.execute(
            "SELECT post_id, category, post_type FROM feed.posts WHERE post_id = ANY(%s)",
            [[row["post_id"] for row in rows]])}
    table = Table(title=esc(title), title_justify="left")
    for column, justify in (("rank", "right"), ("post", "right"), ("author", "right"), ("category", "left"),
                            ("type", "left"), ("source", "left"), ("score", "right"), ("why", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        category, post_type = details.get(row["post_id"], ("?", "?"))
        source = row["source"] + (" (seen)" if row["is_repeat"] else "")
        table.add_row(str(row["rank"]), str(row["post_id"]), str(row["author_id"]), esc(category), esc(post_type),
                      esc(source), f"{row['score']:.4g}", esc(top_reasons(row["reasons"])))
    return table


@click.command()
@click.argument("user")
@click.option("--page-size", type=int, default=12, show_default=True)
@click.option("--after", "cursor", help="The next_cursor of the previous page.")
@click.option("--mode", help="personalized, trending, chronological or random.")
@click.option("--profile", help="A ranking profile (pgfeed profiles list).")
@click.option("--context", "extra", help='More context as JSON, e.g. \'{"connection": "3g"}\'.')
@dsn_options
@json_option
def feed(user, page_size, cursor, mode, profile, extra, dsn, data_dir, as_json):
    """Show a page of USER's feed (USER = a user id, or 'anon').

    \b
    Example:
        pgfeed feed 42
        pgfeed feed 42 --after v1.AbC... --profile social
        pgfeed feed anon --mode trending --json
    """
    viewer = _viewer(user)
    context = _context_json(mode, profile, extra)
    with Context(dsn, data_dir).connect() as conn:
        rows = fetch_page(conn, viewer, page_size, cursor, context)
        if as_json:
            echo_json(rows)
            return
        out = console()
        out.print(page_table(conn, rows, f"feed of {user}"))
        if rows:
            out.print(esc(f"next page: pgfeed feed {user} --page-size {page_size} --after {rows[0]['next_cursor']}"))
        else:
            out.print("no eligible posts")


@click.command()
@click.argument("user")
@click.argument("post", type=int)
@click.option("--profile", help="A ranking profile (default: default).")
@click.option("--context", "extra", help="More context as JSON.")
@dsn_options
@json_option
def explain(user, post, profile, extra, dsn, data_dir, as_json):
    """Explain POST's score for USER, and any rule that keeps it out of the feed.

    \b
    Example:
        pgfeed explain 42 1001 --profile social
    """
    from psycopg.types.json import Jsonb

    viewer = _viewer(user)
    with Context(dsn, data_dir).connect() as conn:
        result = conn.execute("SELECT feed.explain_score(%s, %s, %s)",
                              [viewer, post, Jsonb(_context_json(None, profile, extra))]).fetchone()[0]
    if as_json:
        echo_json(result)
        return
    from rich.table import Table

    out = console()
    verdict = "eligible" if result["eligible"] else "not shown: " + ", ".join(result["excluded_because"])
    if result.get("in_cooldown"):
        verdict += f" (seen {result['last_seen_at']}: only as a controlled repeat)"
    out.print(esc(f"post {post} for user {user}, profile {result['profile']}: score {result['score']:.6g}; "
                  f"{verdict}"))
    table = Table("component", "value", "weight", "contribution")
    for column in table.columns[1:]:
        column.justify = "right"
    contributions = result.get("contributions") or {}
    for name, value in sorted((result.get("components") or {}).items(),
                              key=lambda kv: -abs(contributions.get(kv[0]) or 0)):
        table.add_row(esc(name), f"{value:.4g}", f"{(result.get('weights') or {}).get(name, 0):.3g}",
                      f"{contributions.get(name) or 0:.4g}")
    out.print(table)


@click.command()
@click.argument("post", type=int)
@click.option("--limit", type=int, default=10, show_default=True)
@dsn_options
@json_option
def similar(post, limit, dsn, data_dir, as_json):
    """List the posts most similar to POST (cosine similarity of embeddings).

    \b
    Example:
        pgfeed similar 1001 --limit 5
    """
    with Context(dsn, data_dir).connect() as conn:
        rows = conn.execute("SELECT s.post_id, s.similarity, p.author_id, p.category FROM feed.similar_posts(%s, %s) s"
                            " JOIN feed.posts p USING (post_id) ORDER BY s.similarity DESC, s.post_id",
                            [post, limit]).fetchall()
    if as_json:
        echo_json([{"post_id": r[0], "similarity": r[1], "author_id": r[2], "category": r[3]} for r in rows])
        return
    table = plain_table(("post", "right"), ("similarity", "right"), ("author", "right"), "category",
                        title=f"posts like {post}")
    for r in rows:
        table.add_row(str(r[0]), f"{r[1]:.4f}", str(r[2]), esc(r[3]))
    console().print(table)
