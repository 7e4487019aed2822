"""Probe: every engine operation once on pgfeed distributed over a real Citus cluster.

Not a test (tests/test_citus.py is): a developer's tool for the Citus work. It
starts a coordinator and two workers (tests/citus_cluster.py), installs pgfeed
through the coordinator without distributing, seeds a small world, runs
`migrate` again (which distributes it, docs/distributed.md), then calls every
engine operation once and prints a Markdown table of what works and the first
line of each error.

    .venv/bin/python -m tests.citus_probe    # PROBE_DEBUG=1: full error contexts on stderr
"""

from __future__ import annotations

import os
import sys

import psycopg
from click.testing import CliRunner

from pgfeed import install
from pgfeed.cli import cli

from . import citus_cluster

CALLS = [
    ("insert a post (host write)", "INSERT INTO feed.posts (post_id, author_id, category, post_type)"
                                   " VALUES (100001, 7, 'art', 'image')"),
    ("insert a post with an embedding", "INSERT INTO feed.posts (post_id, author_id, category, post_type, embedding)"
                                        " SELECT 100002, 7, 'art', 'image', ('[' || array_to_string(array_fill(0.5, ARRAY[384]), ',') || ']')::vector"),
    ("its copy is in post_embeddings", "SELECT 1 / (count(*) = 1)::int FROM feed.post_embeddings WHERE post_id = 100002"),
    ("change a post's embedding", "UPDATE feed.posts SET embedding = ('[' || array_to_string(array_fill(0.25, ARRAY[384]), ',') || ']')::vector"
                                  " WHERE post_id = 100002"),
    ("delete a post", "DELETE FROM feed.posts WHERE post_id = 100002"),
    ("its copy is gone", "SELECT 1 / (count(*) = 0)::int FROM feed.post_embeddings WHERE post_id = 100002"),
    ("record_interaction like", "SELECT feed.record_interaction(1, 5, 'like')"),
    ("  the like is in the log and the counter",
     "SELECT 1 / ((SELECT count(*) FROM feed.interactions WHERE user_id = 1 AND post_id = 5 AND action = 'like') = 1"
     " AND (SELECT like_count FROM feed.posts WHERE post_id = 5) >= 1)::int"),
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
        frames = [f.strip()[:140] for f in context.strip().splitlines() if f.strip()]
        shown = frames if len(frames) <= 30 else [*frames[:2], "...", *frames[-3:]]
        line += " [in " + " <- ".join(shown) + "]"
    return line.replace("|", "\\|")


def _step(conn: psycopg.Connection, sql: str, params=None) -> str | None:
    try:
        with psycopg.connect(conn.info.dsn, autocommit=True) as own:  # each step on its own session
            own.execute("SET citus.enable_unsafe_triggers = on")
            own.execute(sql, params)
        return None
    except psycopg.Error as exc:
        if "PROBE_DEBUG" in os.environ:  # the whole error context of every failed step
            print(sql, "\n", getattr(exc.diag, "context", None), file=sys.stderr)
        return _first_line(exc)


def distribute(dsn: str, out=sys.stdout) -> None:
    """Install pgfeed into ``dsn`` on a cluster, seed it, then let `migrate` distribute it."""
    install.migrate(dsn, distribute=False)
    result = CliRunner().invoke(cli, ["seed", "--users", "40", "--posts", "200", "--interactions", "1500",
                                      "--dsn", dsn])
    assert result.exit_code == 0, result.output
    report = install.migrate(dsn)
    out.write(f"| step | result |\n|---|---|\n| migrate: {len(report.distributed)} distribution steps"
              f" | {report.citus} |\n")


def calls(dsn: str, out=sys.stdout) -> None:
    """Call every engine operation once through the coordinator."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        out.write("\n| call through the coordinator | result |\n|---|---|\n")
        for label, sql in CALLS:
            error = _step(conn, sql)
            out.write(f"| {label} | {error or 'ok'} |\n")


def probe(out=sys.stdout) -> None:
    cluster = citus_cluster.start_cluster()
    try:
        dsn = cluster.create_database("pgfeed_probe")
        distribute(dsn, out)
        calls(dsn, out)
    finally:
        cluster.stop()


if __name__ == "__main__":
    probe()
