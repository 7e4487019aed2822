"""Probe: what breaks when pgfeed's tables are distributed as docs/distributed.md plans.

Not a test: a developer's tool for the Citus work still to do. It starts a
coordinator and two workers (tests/citus_cluster.py), installs pgfeed through
the coordinator, seeds a small world, then distributes the tables the way the
design says (each step recorded: what Citus accepted, what it refused and why),
propagates every pgfeed function to the workers, registers the per-viewer
functions for delegation, and calls every engine operation once, printing a
Markdown table of what works and the first line of each error.

    .venv/bin/python -m tests.citus_probe

docs/distributed.md quotes its output; run it again as the blockers are removed.
"""

from __future__ import annotations

import sys

import psycopg
from click.testing import CliRunner

from pgfeed import install
from pgfeed.cli import cli

from . import citus_cluster

# table -> distribution column (colocated with the first) or None for a reference table
PER_VIEWER = [
    ("seen_posts", "user_id"), ("impressions", "user_id"), ("hidden_posts", "user_id"),
    ("user_author_affinity", "user_id"), ("user_post_type_affinity", "user_id"),
    ("user_category_affinity", "user_id"), ("user_signals", "user_id"), ("user_taste", "user_id"),
    ("recommendations", "user_id"), ("user_preferences", "user_id"), ("user_post_state", "user_id"),
    ("follows", "follower_id"), ("collective_members", "user_id"), ("blocks", "user_id"),
    ("interactions", "user_id"), ("feed_sessions", "user_id"),
]
# post_embeddings before posts: the posts triggers write it, on every node
REFERENCE = ["install_state", "settings", "ranking_profiles", "experiments", "user_identities", "post_embeddings",
             "posts", "creator_quality", "job_runs", "item_neighbors", "feed_session_items"]
DELEGATED = [
    "feed.get_personalized_feed(bigint,integer,text,jsonb)",
    "feed.explain_score(bigint,bigint,jsonb)",
    "feed.record_interaction(bigint,bigint,text,numeric,integer)",
    "feed.record_impression(bigint,bigint,text,double precision,text,timestamp with time zone)",
    "feed.record_impressions(bigint,bigint[],text,timestamp with time zone)",
    "feed.record_watch_progress(bigint,bigint,integer,integer,boolean,boolean,boolean)",
]
CALLS = [
    ("insert a post (host write)", "INSERT INTO feed.posts (post_id, author_id, category, post_type)"
                                   " VALUES (100001, 7, 'art', 'image')"),
    ("record_interaction like", "SELECT feed.record_interaction(1, 5, 'like')"),
    ("record_interaction not_interested", "SELECT feed.record_interaction(2, 6, 'not_interested')"),
    ("record_impression", "SELECT feed.record_impression(1, 7)"),
    ("record_impressions", "SELECT feed.record_impressions(1, ARRAY[8, 9]::bigint[])"),
    ("record_watch_progress", "SELECT feed.record_watch_progress(1, 10, 9000, 10000)"),
    ("get_personalized_feed (viewer)", "SELECT count(*) FROM feed.get_personalized_feed(1, 12)"),
    ("get_personalized_feed (anonymous)", "SELECT count(*) FROM feed.get_personalized_feed(NULL, 12)"),
    ("explain_score", "SELECT count(*) FROM feed.explain_score(1, 11)"),
    ("similar_posts", "SELECT count(*) FROM feed.similar_posts(12, 5)"),
    ("refresh_trending_scores", "SELECT feed.refresh_trending_scores()"),
    ("run_maintenance", "SELECT feed.run_maintenance()"),
    ("build_recommendations", "SELECT feed.build_recommendations()"),
    ("rebuild_counters", "SELECT feed.rebuild_counters()"),
    ("feed_metrics", "SELECT count(*) FROM feed.feed_metrics()"),
]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    detail = getattr(getattr(exc, "diag", None), "message_detail", None)
    context = getattr(getattr(exc, "diag", None), "context", None)
    if detail:
        line += f" ({detail.strip()})"
    if context:
        line += f" [in {context.strip().splitlines()[0][:120]}]"
    return line.replace("|", "\\|")


def _step(conn: psycopg.Connection, sql: str, params=None) -> str | None:
    try:
        with psycopg.connect(conn.info.dsn, autocommit=True) as own:  # each step on its own session
            own.execute("SET citus.enable_unsafe_triggers = on")
            own.execute(sql, params)
        return None
    except psycopg.Error as exc:
        return _first_line(exc)


def probe(out=sys.stdout) -> None:
    cluster = citus_cluster.start_cluster()
    try:
        dsn = cluster.create_database("pgfeed_probe")
        install.migrate(dsn)
        result = CliRunner().invoke(cli, ["seed", "--users", "40", "--posts", "200", "--interactions", "1500",
                                          "--dsn", dsn])
        assert result.exit_code == 0, result.output
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER DATABASE pgfeed_probe SET citus.enable_unsafe_triggers = on")
            conn.execute("SET citus.enable_unsafe_triggers = on")
            out.write("| step | result |\n|---|---|\n")
            colocate = "none"
            for table, column in PER_VIEWER:
                error = _step(conn, "SELECT create_distributed_table(%s, %s, colocate_with := %s)",
                              [f"feed.{table}", column, colocate])
                if error is None and colocate == "none":
                    colocate = f"feed.{table}"
                if error is not None:
                    fallback = _step(conn, "SELECT create_reference_table(%s)", [f"feed.{table}"])
                    error += "; made a reference table instead" + (f" (also refused: {fallback})" if fallback else "")
                out.write(f"| distribute feed.{table} by {column} | {error or 'ok'} |\n")
            for table in REFERENCE:
                error = _step(conn, "SELECT create_reference_table(%s)", [f"feed.{table}"])
                out.write(f"| reference table feed.{table} | {error or 'ok'} |\n")
            functions = [r[0] for r in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'feed'::regnamespace"
                " AND p.prokind = 'f' ORDER BY 1").fetchall()]
            refused = {}
            for signature in functions:
                error = _step(conn, "SELECT create_distributed_function(%s)", [signature])
                if error:
                    refused[signature] = error
            out.write(f"| propagate the {len(functions)} functions to the workers | "
                      f"{'ok' if not refused else '; '.join(f'{k}: {v}' for k, v in refused.items())} |\n")
            for signature in DELEGATED:
                error = _step(conn, "SELECT create_distributed_function(%s, 'p_user_id', colocate_with := %s)",
                              [signature, colocate])
                out.write(f"| delegate {signature.split('(')[0]} by p_user_id | {error or 'ok'} |\n")
            out.write("\n| call through the coordinator | result |\n|---|---|\n")
            for label, sql in CALLS:
                error = _step(conn, sql)
                out.write(f"| {label} | {error or 'ok'} |\n")
    finally:
        cluster.stop()


if __name__ == "__main__":
    probe()
