"""`pgfeed doctor`: is this installation healthy, and if not, what to do.

Each check returns {name, status: ok | info | warn | fail, detail, fix}; only
"fail" makes the command exit non-zero.

Two kinds of findings:
- the installed shape differs from what this version installs (a missing or
  invalid index, a dropped default, a changed function body, a grant too many
  or too few, a row-level-security flag, a stray column...): a failure. The
  expected shape is sql/manifest.json, generated from a fresh install
  (see pgfeed.shape); every difference is named, one by one;
- staleness (the heartbeat or the recommendations not run lately): a warning.
"""

from __future__ import annotations

import psycopg

from . import distribution, install
from . import shape as shapes

# every function the public contract names (CONTRACT.md §3)
CONTRACT_FUNCTIONS = [
    "feed.get_personalized_feed(bigint,integer,text,jsonb)",
    "feed.similar_posts(bigint,integer)",
    "feed.explain_score(bigint,bigint,jsonb)",
    "feed.record_interaction(bigint,bigint,text,numeric,integer)",
    "feed.record_impression(bigint,bigint,text,double precision,text,timestamp with time zone)",
    "feed.record_impressions(bigint,bigint[],text,timestamp with time zone)",
    "feed.record_watch_progress(bigint,bigint,integer,integer,boolean,boolean,boolean)",
    "feed.trending_score(bigint,bigint,bigint,numeric,numeric,timestamp with time zone,timestamp with time zone)",
    "feed.refresh_trending_scores(interval)",
    "feed.build_recommendations(interval)",
    "feed.run_maintenance()",
]

HEARTBEAT_STALE = "1 hour"
RECOMMENDATIONS_STALE = "2 days"


def _check(name, status, detail, fix=None) -> dict:
    return {"name": name, "status": status, "detail": detail, "fix": fix}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def run_checks(dsn: str) -> list[dict]:
    checks: list[dict] = []
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable"
        return [_check("server", "fail", f"cannot connect: {first}",
                       "start the server (pgfeed server start) or fix --dsn / PGFEED_DSN")]
    with conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        major = _version_tuple(version)[:1]
        checks.append(_check("server", "ok" if major >= (15,) else "fail", f"PostgreSQL {version}",
                             None if major >= (15,) else "pgfeed needs PostgreSQL 15 or newer"))
        vector = conn.execute("SELECT e.extversion, a.default_version FROM pg_extension e"
                              " LEFT JOIN pg_available_extensions a ON a.name = e.extname"
                              " WHERE e.extname = 'vector'").fetchone()
        if vector is None:
            checks.append(_check("pgvector", "fail", "not installed", "run pgfeed migrate (it creates the extension)"))
        else:
            v = _version_tuple(vector[0])
            status = "ok" if v >= (0, 8) else ("warn" if v >= (0, 7) else "fail")
            fix = None if status == "ok" else "upgrade pgvector to 0.8+ for iterative index scans"
            detail = f"version {vector[0]}"
            if status == "ok" and vector[1] and vector[1] != vector[0]:
                # the server has a newer pgvector than the database uses: a warning, not a difference
                status, detail, fix = "warn", f"{detail}, but this server ships {vector[1]}", "ALTER EXTENSION vector UPDATE"
            checks.append(_check("pgvector", status, detail, fix))

        revision = install.current_revision(conn) if install.feed_schema_exists(conn) else None
        head = install.head_revision()
        if revision != head:
            checks.append(_check("migrations", "fail", f"at {revision or 'nothing'}, head is {head}",
                                 "run pgfeed migrate"))
            return checks
        checks.append(_check("migrations", "ok", f"at head ({head})"))

        checks.extend(shape_checks(conn))

        missing = [sig for sig in CONTRACT_FUNCTIONS
                   if conn.execute("SELECT to_regprocedure(%s)", [sig]).fetchone()[0] is None]
        checks.append(_check("contract functions", "fail" if missing else "ok",
                             f"missing: {', '.join(missing)}" if missing else f"all {len(CONTRACT_FUNCTIONS)} present",
                             "run pgfeed migrate --force-functions" if missing else None))

        citus = distribution.doctor_check(conn)  # only on a Citus coordinator
        if citus is not None:
            checks.append(_check("citus", citus["status"], citus["detail"], citus["fix"]))

        posts = conn.execute("SELECT count(*) FROM feed.posts").fetchone()[0]
        beat = conn.execute(
            "SELECT last_run_at, now() - last_run_at > %s::interval, now() - last_run_at FROM feed.job_runs"
            " WHERE job = 'heartbeat'", [HEARTBEAT_STALE]).fetchone()
        if beat is None:
            status = "warn" if posts else "info"
            checks.append(_check("heartbeat", status, "never ran",
                                 "schedule feed.run_maintenance() every 10 minutes (docs/operations.md)"
                                 if posts else None))
        else:
            checks.append(_check("heartbeat", "warn" if beat[1] else "ok", f"last ran {beat[2]} ago",
                                 "schedule feed.run_maintenance() every 10 minutes (docs/operations.md)"
                                 if beat[1] else None))

        recs = conn.execute(
            "SELECT count(*) FILTER (WHERE expires_at <= now()), count(*) FROM feed.recommendations").fetchone()
        built = conn.execute("SELECT last_run_at, now() - last_run_at > %s::interval FROM feed.job_runs"
                             " WHERE job = 'build_recommendations'", [RECOMMENDATIONS_STALE]).fetchone()
        if recs[1] == 0:
            checks.append(_check("recommendations", "info", "none built yet",
                                 "run pgfeed recs build (nightly from cron)"))
        else:
            stale = recs[0] > recs[1] / 2 or (built is not None and built[1])
            checks.append(_check("recommendations", "warn" if stale else "ok",
                                 f"{recs[1]} rows, {recs[0]} expired",
                                 "run pgfeed recs build (nightly from cron)" if stale else None))

        changed = conn.execute("SELECT name, value, default_value FROM feed.settings WHERE value <> default_value"
                               " ORDER BY name").fetchall()
        checks.append(_check("settings", "info",
                             "; ".join(f"{n} = {v} (default {d})" for n, v, d in changed) if changed
                             else "all at their defaults"))
    return checks


# ---------------------------------------------------------------------------
# the installed shape against the manifest

# doctor's check for each kind of difference, in the order they are printed
SHAPE_CHECKS = ("tables", "columns", "constraints", "indexes", "functions", "triggers", "grants",
                "row level security")
MAX_NAMED = 25
FIX_MIGRATE = "run pgfeed migrate (it recreates what is missing or invalid and re-applies the functions)"
FIX_EXTRA = ("what this pgfeed version does not install: drop it or move it out of schema feed "
             "(migrate never drops objects, nor revokes grants to roles that are not pgfeed's)")


def _shape_check_name(difference: shapes.Difference) -> str:
    if difference in shapes.grant_differences([difference]):
        return "grants"
    if difference.category == "policies" or (
            difference.category == "relations" and "row level security" in difference.detail):
        return "row level security"
    if difference.category in ("relations", "schema", "types"):
        return "tables"
    return difference.category


def _summary(differences: list[shapes.Difference]) -> str:
    named = [str(d) for d in differences[:MAX_NAMED]]
    if len(differences) > MAX_NAMED:
        named.append(f"and {len(differences) - MAX_NAMED} more (--json lists all)")
    return "; ".join(named)


def shape_differences(conn: psycopg.Connection, manifest: dict | None = None) -> list[shapes.Difference]:
    """Every difference of the database's schema feed from this version's manifest."""
    manifest = manifest if manifest is not None else shapes.load_manifest()
    return shapes.compare(manifest["shape"], shapes.read_shape(conn), install.embedding_dimension(conn))


def shape_checks(conn: psycopg.Connection) -> list[dict]:
    checks: list[dict] = []
    try:
        manifest = shapes.load_manifest()
    except (OSError, ValueError) as exc:
        return [_check("manifest", "fail", f"cannot read {shapes.manifest_path()}: {exc}",
                       "reinstall pgfeed (the package is incomplete)")]
    if not shapes.manifest_is_current(manifest):
        checks.append(_check("manifest", "fail", "sql/manifest.json was generated from other SQL files than "
                             "these; the comparisons below may be wrong",
                             f"regenerate it in the source tree: {shapes.REGENERATE_COMMAND}"))

    # extensions belong to the database: pgfeed's must be there, their versions current
    # (pgvector has its own check above, with the minimum version)
    for name, expected in sorted(manifest["shape"].get("extensions", {}).items()):
        if name == "vector":
            continue
        row = conn.execute("SELECT e.extversion, a.default_version FROM pg_catalog.pg_extension e"
                           " LEFT JOIN pg_catalog.pg_available_extensions a ON a.name = e.extname"
                           " WHERE e.extname = %s", [name]).fetchone()
        if row is None:
            checks.append(_check(f"extension {name}", "fail", "not installed", f"CREATE EXTENSION {name}"))
        elif row[1] is not None and row[0] != row[1]:
            checks.append(_check(f"extension {name}", "warn",
                                 f"version {row[0]}, but this server ships {row[1]}",
                                 f"ALTER EXTENSION {name} UPDATE"))
        else:
            checks.append(_check(f"extension {name}", "ok",
                                 f"version {row[0]}" + ("" if row[0] == expected["version"]
                                                        else f" (this pgfeed was built with {expected['version']})")))

    differences = shape_differences(conn, manifest)
    by_check: dict[str, list[shapes.Difference]] = {name: [] for name in SHAPE_CHECKS}
    for difference in differences:
        by_check[_shape_check_name(difference)].append(difference)
    expected = manifest["shape"]
    counts = {"tables": len(expected["relations"]), "columns": len(expected["columns"]),
              "constraints": len(expected["constraints"]), "indexes": len(expected["indexes"]),
              "functions": len(expected["functions"]), "triggers": len(expected["triggers"])}

    # the function files applied are this version's (a quick check that also covers what no catalog shows)
    try:
        rendered = install.render_functions(install.vector_schema(conn))
    except install.MigrationError:
        rendered = None  # no pgvector: its own check fails
    applied = conn.execute("SELECT value FROM feed.install_state WHERE key = 'functions_sha256'").fetchone()
    files_current = rendered is not None and applied is not None and applied[0] == install.functions_digest(rendered)

    for name in SHAPE_CHECKS:
        found = by_check[name]
        if name == "functions" and not files_current:
            found_text = "the function files applied differ from this pgfeed version's"
            detail = "; ".join([found_text] + ([_summary(found)] if found else []))
            check = _check(name, "fail", detail, "run pgfeed migrate --force-functions")
        elif found:
            extras = [d.kind == "extra" for d in found]
            fix = FIX_EXTRA if all(extras) else (FIX_MIGRATE + "; " + FIX_EXTRA if any(extras) else FIX_MIGRATE)
            check = _check(name, "fail", _summary(found), fix)
        elif name == "indexes":
            check = _check(name, "ok", f"all {counts[name]} present and valid")
        elif name == "grants":
            check = _check(name, "ok", "as this version grants them")
        elif name == "row level security":
            check = _check(name, "ok", "as this version sets it")
        elif name == "functions":
            check = _check(name, "ok", f"all {counts[name]} match this pgfeed version")
        else:
            check = _check(name, "ok", f"all {counts[name]} as installed")
        check["differences"] = [d.as_dict() for d in found]
        checks.append(check)
    return checks
