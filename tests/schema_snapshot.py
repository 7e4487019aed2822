"""A comparable description of everything pgfeed owns in a database.

Columns are compared by name, not position: a revision that adds a column
appends it, while schema.sql may place it where it reads best.
"""

from __future__ import annotations

import json

import psycopg

from pgfeed.shape import read_shape

QUERIES = {
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'feed' AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "relations": """
        SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'feed' ORDER BY 1""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'feed'::regnamespace ORDER BY 1, 2""",
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'feed' ORDER BY 1""",
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = 'feed'::regnamespace AND p.prokind <> 'a' ORDER BY 1""",
    "aggregates": """
        SELECT a.aggfnoid::regprocedure::text, a.aggtransfn::regproc::text, a.aggfinalfn::regproc::text,
               a.aggcombinefn::regproc::text, format_type(a.aggtranstype, NULL), a.agginitval, a.aggkind
        FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
        WHERE p.pronamespace = 'feed'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal
          AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'feed'::regnamespace)
        ORDER BY 1, 2""",
    "views": """
        SELECT viewname, definition FROM pg_views WHERE schemaname = 'feed' ORDER BY 1""",
    "types": """
        SELECT t.typname, t.typtype FROM pg_type t
        WHERE t.typnamespace = 'feed'::regnamespace AND t.typtype IN ('d', 'e', 'r', 'm') ORDER BY 1""",
    "extensions": """
        SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1""",
    "settings": """
        SELECT name, value, default_value, kind, description FROM feed.settings ORDER BY 1""",
    "profiles": """
        SELECT name, description, weights, source_quotas, params FROM feed.ranking_profiles ORDER BY 1""",
    "install_state": """
        SELECT key, CASE WHEN key = 'cursor_secret' THEN length(value)::text ELSE value END
        FROM feed.install_state WHERE key <> 'functions_sha256' ORDER BY 1""",
    "version": "SELECT version_num FROM feed.alembic_version",
}


def snapshot(dsn: str) -> dict[str, list[tuple]]:
    """Every query above, plus pgfeed.shape's normalized shape (grants, owners,
    row-level security, storage: what doctor compares)."""
    with psycopg.connect(dsn) as conn:
        result = {name: conn.execute(query).fetchall() for name, query in QUERIES.items()}
        result["shape"] = [json.dumps(read_shape(conn), sort_keys=True)]
        return result


def feed_schema_exists(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'feed')").fetchone()[0]
