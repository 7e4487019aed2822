"""`pgfeed doctor`: is this installation healthy, and if not, what to do.

Each check returns {name, status: ok | info | warn | fail, detail, fix}; only
"fail" makes the command exit non-zero.
"""

from __future__ import annotations

import psycopg

from . import install

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
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        if vector is None:
            checks.append(_check("pgvector", "fail", "not installed", "run pgfeed migrate (it creates the extension)"))
        else:
            v = _version_tuple(vector[0])
            status = "ok" if v >= (0, 8) else ("warn" if v >= (0, 7) else "fail")
            checks.append(_check("pgvector", status, f"version {vector[0]}",
                                 None if status == "ok" else "upgrade pgvector to 0.8+ for iterative index scans"))

        revision = install.current_revision(conn) if install.feed_schema_exists(conn) else None
        head = install.head_revision()
        if revision != head:
            checks.append(_check("migrations", "fail", f"at {revision or 'nothing'}, head is {head}",
                                 "run pgfeed migrate"))
            return checks
        checks.append(_check("migrations", "ok", f"at head ({head})"))

        rendered = install.render_functions(install.vector_schema(conn))
        applied = conn.execute("SELECT value FROM feed.install_state WHERE key = 'functions_sha256'").fetchone()
        current = applied is not None and applied[0] == install.functions_digest(rendered)
        checks.append(_check("functions", "ok" if current else "fail",
                             "match this pgfeed version" if current else "differ from this pgfeed version",
                             None if current else "run pgfeed migrate --force-functions"))

        missing = [sig for sig in CONTRACT_FUNCTIONS
                   if conn.execute("SELECT to_regprocedure(%s)", [sig]).fetchone()[0] is None]
        checks.append(_check("contract functions", "fail" if missing else "ok",
                             f"missing: {', '.join(missing)}" if missing else f"all {len(CONTRACT_FUNCTIONS)} present",
                             "run pgfeed migrate --force-functions" if missing else None))

        invalid = [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relnamespace = 'feed'::regnamespace AND NOT (i.indisvalid AND i.indisready)").fetchall()]
        checks.append(_check("indexes", "fail" if invalid else "ok",
                             f"invalid: {', '.join(invalid)}" if invalid else "all valid",
                             "REINDEX INDEX CONCURRENTLY feed.<name> for each" if invalid else None))

        posts = conn.execute("SELECT count(*) FROM feed.posts").fetchone()[0]
        beat = conn.execute(
            "SELECT last_run_at, now() - last_run_at > %s::interval, now() - last_run_at FROM feed.job_runs"
            " WHERE job = 'heartbeat'", [HEARTBEAT_STALE]).fetchone()
        if beat is None:
            status = "fail" if posts else "info"
            checks.append(_check("heartbeat", status, "never ran",
                                 "schedule feed.run_maintenance() every 10 minutes (docs/operations.md)"
                                 if posts else None))
        else:
            checks.append(_check("heartbeat", "fail" if beat[1] else "ok", f"last ran {beat[2]} ago",
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
