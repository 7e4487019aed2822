"""pgfeed on a Citus cluster (docs/distributed.md).

On a Citus coordinator with at least one worker, `migrate` distributes the
per-viewer tables by viewer, colocated; copies the shared tables to every node
as reference tables; propagates every function to the workers, registers the
per-viewer entry points for delegation by ``p_user_id`` (contract §9); and
gives the entry points custom plans, because Citus plans a statement with
parameters only as a plain single-shard lookup. Each step runs once, in its
own transaction, after the schema and the functions are in place, so running
`migrate` again changes nothing. `doctor` checks the result.

On a server without the ``citus`` extension nothing here runs a Citus query,
and a single-server install is the same schema and the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

# the Citus catalog and functions pgfeed reads; only queried when citus is installed
_WORKERS_SQL = ("SELECT count(*) FROM pg_catalog.pg_dist_node"
                " WHERE noderole = 'primary' AND isactive AND shouldhaveshards AND groupid <> 0")

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


# the per-viewer tables are colocated with this one
ANCHOR = "seen_posts"
# the entry points a call is delegated by, to the worker holding the viewer
DELEGATED: tuple[str, ...] = (
    "get_personalized_feed(bigint,integer,text,jsonb)",
    "explain_score(bigint,bigint,jsonb)",
    "record_interaction(bigint,bigint,text,numeric,integer)",
    "record_impression(bigint,bigint,text,double precision,text,timestamp with time zone)",
    "record_impressions(bigint,bigint[],text,timestamp with time zone)",
    "record_watch_progress(bigint,bigint,integer,integer,boolean,boolean,boolean)",
)
CUSTOM_PLANS = "plan_cache_mode=force_custom_plan"

# each function and aggregate: (signature, on every node, delegated by an
# argument, names a table's row type: Citus copies it only once the table is
# in its metadata)
_PROPAGATED_SQL = (
    "WITH table_typed AS ("
    " SELECT d.objid FROM pg_catalog.pg_depend d"
    " JOIN pg_catalog.pg_type t ON d.refclassid = 'pg_catalog.pg_type'::regclass AND d.refobjid = t.oid"
    " JOIN pg_catalog.pg_class c ON c.oid = t.typrelid"
    "  OR c.oid = (SELECT e.typrelid FROM pg_catalog.pg_type e WHERE e.oid = t.typelem)"
    " WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND c.relkind IN ('r', 'p'))"
    " SELECT p.oid::regprocedure::text, o.objid IS NOT NULL, o.distribution_argument_index IS NOT NULL,"
    " p.oid IN (SELECT objid FROM table_typed) OR EXISTS (SELECT 1 FROM pg_catalog.pg_aggregate a"
    "  WHERE a.aggfnoid = p.oid AND (a.aggtransfn::oid IN (SELECT objid FROM table_typed)"
    "   OR a.aggfinalfn::oid IN (SELECT objid FROM table_typed))),"
    " p.prosrc"
    " FROM pg_catalog.pg_proc p"
    " LEFT JOIN pg_catalog.pg_dist_object o ON o.classid = 'pg_catalog.pg_proc'::regclass AND o.objid = p.oid"
    " WHERE p.pronamespace = 'feed'::regnamespace AND p.prokind IN ('f', 'a') ORDER BY 1")


def _coordinator_functions(functions: list[tuple]) -> set[str]:
    """The functions that stay on the coordinator: those reading a coordinator-only
    table (the analytics), which only coordinator-run jobs call and which would be
    dead code on a worker."""
    tables = [f"feed.{table}" for table in COORDINATOR_ONLY]
    return {row[0] for row in functions if row[4] and any(t in row[4] for t in tables)}


_ENTRY_POINTS_SQL = (
    "SELECT p.oid::regprocedure::text, coalesce(%s = ANY (p.proconfig), false) FROM pg_catalog.pg_proc p"
    " WHERE p.pronamespace = 'feed'::regnamespace AND p.prokind = 'f' AND p.prosecdef ORDER BY 1")


@dataclass
class CitusStatus:
    version: str
    workers: int
    # pgfeed tables in Citus' metadata: table -> (method, distribution column, colocation id)
    placed: dict[str, tuple[str, str | None, int]] = field(default_factory=dict)

    @property
    def distributed(self) -> bool:
        return bool(self.placed)

    def summary(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        if not self.placed:
            if self.workers == 0:
                return f"Citus {self.version} with no workers; pgfeed's tables stay on the coordinator"
            return f"Citus {self.version} with {workers}; pgfeed's tables are not distributed yet"
        by_viewer = sum(1 for method, _, _ in self.placed.values() if method == "h")
        reference = sum(1 for table in REFERENCE if self.placed.get(table, ("",))[0] == "n")
        return (f"Citus {self.version} with {workers}; {by_viewer} pgfeed tables distributed by viewer, "
                f"{reference} reference tables")


def citus_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus'").fetchone()
    return row[0] if row else None


def citus_status(conn: psycopg.Connection) -> CitusStatus | None:
    """The Citus cluster this database belongs to, or None without the citus extension."""
    version = citus_version(conn)
    if version is None:
        return None
    workers = conn.execute(_WORKERS_SQL).fetchone()[0]
    placed = {}
    if conn.execute("SELECT to_regnamespace('feed') IS NOT NULL").fetchone()[0]:
        for name, method, column, colocation in conn.execute(
                "SELECT c.relname, p.partmethod::text,"
                " CASE WHEN p.partmethod = 'h' THEN pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) END,"
                " p.colocationid"
                " FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid"
                " WHERE c.relnamespace = 'feed'::regnamespace ORDER BY 1").fetchall():
            placed[name] = (method, column, colocation)
    return CitusStatus(version=version, workers=workers, placed=placed)


def _per_viewer_order() -> list[tuple[str, str]]:
    """The anchor first; a table after the ones its foreign keys name."""
    order = [(ANCHOR, DISTRIBUTED_BY_VIEWER[ANCHOR])]
    order += [(t, c) for t, c in DISTRIBUTED_BY_VIEWER.items() if t not in (ANCHOR, "feed_session_items")]
    order.append(("feed_session_items", DISTRIBUTED_BY_VIEWER["feed_session_items"]))
    return order


ROLES = ("pgfeed_app", "pgfeed_viewer", "pgfeed_admin")
_ROLES_ON_WORKER = (
    "SET citus.enable_ddl_propagation TO off; DO $roles$ BEGIN"
    " IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgfeed_app') THEN"
    "  CREATE ROLE pgfeed_app NOLOGIN; END IF;"
    " IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgfeed_viewer') THEN"
    "  CREATE ROLE pgfeed_viewer NOLOGIN; END IF;"
    " IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pgfeed_admin') THEN"
    "  CREATE ROLE pgfeed_admin NOLOGIN; END IF;"
    " IF NOT pg_catalog.pg_has_role('pgfeed_admin', 'pgfeed_app', 'MEMBER') THEN"
    "  GRANT pgfeed_app TO pgfeed_admin; END IF; END $roles$")


def ensure_roles_on_workers(conn: psycopg.Connection) -> None:
    """pgfeed's group roles on every worker. Citus creates a role on the workers
    when it is created in a database that has Citus; roles are server-wide, so
    they may have been created before (pgfeed in another database of this
    server, or before Citus was added), and the grants migrate propagates
    would then fail on the workers."""
    status = citus_status(conn)
    if status is None or status.workers == 0:
        return
    if conn.execute("SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = ANY (%s)", [list(ROLES)]
                    ).fetchone()[0] < len(ROLES):
        return  # not created yet: the function files create them, and Citus propagates that
    for node, port, ok, result in conn.execute(
            "SELECT nodename, nodeport, success, result FROM pg_catalog.run_command_on_workers(%s)",
            [_ROLES_ON_WORKER]).fetchall():
        if not ok:
            raise psycopg.Error(f"creating pgfeed's roles on the worker {node}:{port}: {result}")


def distribution_steps(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """What is left to do to distribute pgfeed on this cluster: (what, SQL) in order.
    Empty without Citus, without workers, or when everything is in place."""
    status = citus_status(conn)
    if status is None or status.workers == 0:
        return []
    steps: list[tuple[str, str]] = []
    truncates: list[str] = []
    # the functions on every node first (but those naming a table's row type,
    # which Citus copies only once the table is in its metadata): the triggers
    # on the reference tables call them on each node while Citus copies the rows
    functions = conn.execute(_PROPAGATED_SQL).fetchall()
    propagated = {row[0]: (row[1], row[2]) for row in functions}
    delegated = {f"feed.{signature}" for signature in DELEGATED}
    staying = _coordinator_functions(functions)
    late = []
    for signature, everywhere, _, needs_tables, _ in functions:
        if not everywhere and signature not in delegated and signature not in staying:
            step = (f"propagate {signature.split('(')[0]}",
                    f"SELECT pg_catalog.create_distributed_function('{signature}')")
            (late if needs_tables else steps).append(step)
    for table, column in _per_viewer_order():
        if table not in status.placed:
            colocate = "none" if table == ANCHOR else f"feed.{ANCHOR}"
            steps.append((f"distribute feed.{table} by {column}",
                          f"SELECT pg_catalog.create_distributed_table('feed.{table}', '{column}',"
                          f" colocate_with := '{colocate}')"))
            truncates.append(table)
    for table in REFERENCE:
        if table not in status.placed:
            steps.append((f"copy feed.{table} to every node",
                          f"SELECT pg_catalog.create_reference_table('feed.{table}')"))
            truncates.append(table)
    # the coordinator's own copies of the rows, now on the shards, once every
    # table is placed (a table's copy cannot go while another local table
    # still references it)
    steps += [(f"drop feed.{table}'s rows left on the coordinator",
               f"SELECT pg_catalog.truncate_local_data_after_distributing_table('feed.{table}')")
              for table in truncates]
    # the functions that need the tables, and the per-viewer entry points
    # delegated by the viewer, once the tables are distributed
    steps += late
    for signature in sorted(delegated):
        if not propagated.get(signature, (False, False))[1]:
            steps.append((f"delegate {signature.split('(')[0]} by p_user_id",
                          f"SELECT pg_catalog.create_distributed_function('{signature}', 'p_user_id',"
                          f" colocate_with := 'feed.{ANCHOR}')"))
    for signature, custom in conn.execute(_ENTRY_POINTS_SQL, [CUSTOM_PLANS]).fetchall():
        if not custom:
            steps.append((f"custom plans for {signature.split('(')[0]}",
                          f"ALTER FUNCTION {signature} SET plan_cache_mode = force_custom_plan"))
    return steps


def distribute(dsn: str) -> list[str]:
    """Run the distribution steps on the coordinator at ``dsn``, each in its own
    transaction (Citus refuses reference-table creation in a transaction that
    ran other distributed DDL locally). Returns what was done."""
    done: list[str] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        steps = distribution_steps(conn)
        if not steps:
            return done
        conn.execute("SET citus.enable_unsafe_triggers = on")  # triggers on posts and the sessions
        for what, sql in steps:
            try:
                if what.startswith("propagate "):
                    # created on the workers before the tables they name are there:
                    # bodies unchecked, as pg_dump restores them
                    with conn.transaction():
                        conn.execute("SET LOCAL citus.propagate_set_commands = 'local'")
                        conn.execute("SET LOCAL check_function_bodies = off")
                        conn.execute(sql)
                    continue
                conn.execute(sql)
            except psycopg.Error as exc:
                raise psycopg.Error(f"{what}: {str(exc).strip().splitlines()[0]}") from exc
            if not what.startswith("drop "):
                done.append(what)
    return done


def distribution_sql(conn: psycopg.Connection) -> str:
    """The statements `migrate` would run to distribute pgfeed on this cluster, for review."""
    steps = distribution_steps(conn)
    if not steps:
        return ""
    out = ["-- distribution on the Citus cluster (docs/distributed.md), each statement its own transaction",
           "SET citus.enable_unsafe_triggers = on;"]
    out += [f"-- {what}\n{sql};" for what, sql in steps]
    return "\n".join(out) + "\n"


def doctor_check(conn: psycopg.Connection) -> dict | None:
    """The doctor's `citus` check (None on a server without Citus): status, detail, fix."""
    status = citus_status(conn)
    if status is None:
        return None
    if status.workers == 0 and not status.placed:
        return {"status": "ok", "detail": status.summary(), "fix": None}
    # what is missing is what migrate would still do; beside it, what is placed wrongly
    steps = [what for what, _ in distribution_steps(conn) if not what.startswith("drop ")]
    functions = [what for what in steps if what.startswith("propagate ")]
    pending = [what for what in steps if not what.startswith("propagate ")]
    if functions:
        pending.append(f"propagate {len(functions)} functions to the workers")
    problems = [f"to do: {', '.join(pending[:8])}{f' (and {len(pending) - 8} more)' if len(pending) > 8 else ''}"
                ] if pending else []
    anchor = status.placed.get(ANCHOR)
    for table, column in DISTRIBUTED_BY_VIEWER.items():
        placed = status.placed.get(table)
        if placed is None:
            continue
        if placed[0] != "h" or placed[1] != column:
            problems.append(f"feed.{table} is not distributed by {column}")
        elif anchor is not None and placed[2] != anchor[2]:
            problems.append(f"feed.{table} is not colocated with feed.{ANCHOR}")
    for table in REFERENCE:
        placed = status.placed.get(table)
        if placed is not None and placed[0] != "n":
            problems.append(f"feed.{table} is not a reference table")
    nodes = conn.execute("SELECT count(*) FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive"
                         ).fetchone()[0]
    short = conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_dist_partition p"
        " JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid AND c.relnamespace = 'feed'::regnamespace"
        " JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid = p.logicalrelid"
        " WHERE p.partmethod = 'n' AND p.repmodel = 't'"
        " AND (SELECT count(*) FROM pg_catalog.pg_dist_placement pl WHERE pl.shardid = s.shardid) < %s"
        " ORDER BY 1", [nodes]).fetchall()
    problems += [f"feed.{name} is not on every node" for (name,) in short]
    if problems:
        return {"status": "fail", "detail": f"{status.summary()}; " + "; ".join(problems),
                "fix": "pgfeed migrate (it distributes what is missing)"}
    return {"status": "ok", "detail": status.summary(), "fix": None}
