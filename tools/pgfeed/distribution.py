"""What pgfeed finds on a Citus coordinator (docs/distributed.md).

This version runs on a Citus coordinator with every pgfeed table kept on the
coordinator: the functions and every guarantee are the single-server ones, and
Citus' workers hold none of pgfeed's rows. `migrate` reports the cluster it
finds and distributes nothing; `doctor` checks that no pgfeed table has been
distributed by hand, because the engine's functions do not yet run on
distributed tables (docs/distributed.md lists what stops them).

On a server without the ``citus`` extension nothing here runs a Citus query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

# the Citus catalog and functions pgfeed reads; only queried when citus is installed
_WORKERS_SQL = ("SELECT count(*) FROM pg_catalog.pg_dist_node"
                " WHERE noderole = 'primary' AND isactive AND shouldhaveshards AND groupid <> 0")
_PLACED_SQL = ("SELECT c.relname, p.partmethod FROM pg_catalog.pg_dist_partition p"
               " JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid"
               " WHERE c.relnamespace = 'feed'::regnamespace ORDER BY 1")
METHODS = {"h": "distributed", "n": "reference or Citus-managed local", "a": "append-distributed",
           "r": "range-distributed"}
UNDO = "SELECT undistribute_table('feed.{table}')"


# Where each pgfeed table is to live on a cluster (docs/distributed.md, "Where
# each table lives"): the column a per-viewer table is distributed by, all
# colocated with the first; the tables copied to every node; and the ones kept
# on the coordinator, which only coordinator-run jobs read and write.
# tests/test_schema.py checks that every table of the schema is placed once.
DISTRIBUTED_BY_VIEWER: dict[str, str] = {
    "seen_posts": "user_id", "impressions": "user_id", "hidden_posts": "user_id",
    "user_author_affinity": "user_id", "user_post_type_affinity": "user_id",
    "user_category_affinity": "user_id", "user_tag_affinity": "user_id", "user_signals": "user_id",
    "user_taste": "user_id", "recommendations": "user_id", "user_preferences": "user_id",
    "user_post_state": "user_id", "follows": "follower_id", "collective_members": "user_id",
    "interactions": "user_id", "feed_sessions": "viewer_key", "feed_session_items": "viewer_key",
}
# Per-viewer tables whose schema cannot be distributed yet, and why: the
# distribution column must be NOT NULL and part of every unique key.
NOT_YET_DISTRIBUTABLE: dict[str, str] = {}
# post_embeddings before posts: the posts triggers write it on every node.
# blocks: a block hides content both ways, so a viewer's feed reads who blocked
# them as well as whom they blocked; a copy on every node answers both without
# a query across shards (blocks are written rarely, the two-phase commit is
# affordable).
REFERENCE: tuple[str, ...] = (
    "install_state", "settings", "ranking_profiles", "experiments", "user_identities", "post_embeddings",
    "posts", "creator_quality", "job_runs", "item_neighbors", "import_keys", "blocks",
)
COORDINATOR_ONLY: tuple[str, ...] = (
    "alembic_version", "analytics_rollup_state", "analytics_daily_posts", "analytics_daily_pages", "analytics_daily_sources",
    "analytics_experiment_viewers", "analytics_experiment_variants", "analytics_engaged_rows",
)


@dataclass
class CitusStatus:
    version: str
    workers: int
    # pgfeed tables in Citus' metadata: (table, what Citus made of it)
    placed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        if self.placed:
            names = ", ".join(f"feed.{t} ({how})" for t, how in self.placed)
            return (f"Citus {self.version} with {workers}; pgfeed tables in Citus' metadata: {names}. "
                    "This version of pgfeed runs with its tables on the coordinator only")
        return f"Citus {self.version} with {workers}; pgfeed's tables stay on the coordinator (not distributed)"


def citus_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus'").fetchone()
    return row[0] if row else None


def citus_status(conn: psycopg.Connection) -> CitusStatus | None:
    """The Citus cluster this database belongs to, or None without the citus extension."""
    version = citus_version(conn)
    if version is None:
        return None
    workers = conn.execute(_WORKERS_SQL).fetchone()[0]
    placed = []
    if conn.execute("SELECT to_regnamespace('feed') IS NOT NULL").fetchone()[0]:
        placed = [(name, METHODS.get(method, method)) for name, method in conn.execute(_PLACED_SQL).fetchall()]
    return CitusStatus(version=version, workers=workers, placed=placed)


def doctor_check(conn: psycopg.Connection) -> dict | None:
    """The doctor's `citus` check (None on a server without Citus): status, detail, fix."""
    status = citus_status(conn)
    if status is None:
        return None
    if status.placed:
        fix = "; ".join(UNDO.format(table=t) for t, _ in status.placed)
        return {"status": "fail", "detail": status.summary(), "fix": fix}
    return {"status": "ok", "detail": status.summary(), "fix": None}
