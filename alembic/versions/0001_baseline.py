"""Baseline: schema feed, host tables, interaction log, impressions, settings, profiles.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

The DDL is frozen in 0001_baseline.sql beside this file (the schema.sql of the
day it was written); tests/test_migrations.py checks its sha256 so it never
changes after release. Later schema changes are new revisions.
"""

from pathlib import Path

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BASELINE_SQL = Path(__file__).with_suffix(".sql")

# Drops every object in schema feed except alembic's version table (which
# alembic still needs at this point; env.py drops it and the schema once at
# base), then pgvector if, and only if, pgfeed created it.
UNINSTALL_SQL = r"""
DO $uninstall$
DECLARE
    created_vector boolean;
    drops text[];
    drop_statement text;
BEGIN
    SELECT coalesce(bool_or(value = 'true'), false) INTO created_vector
    FROM feed.install_state WHERE key = 'created_extension_vector';

    -- Each kind's DROP statements are all spelled out (names, not OIDs) before
    -- the first runs: a drop cascades to what depends on the object (a routine
    -- whose SQL-standard body names another, a view on a table), and a dropped
    -- object's OID no longer prints as a name; IF EXISTS then skips it.
    SELECT array_agg('DROP ROUTINE IF EXISTS ' || p.oid::regprocedure::text || ' CASCADE') INTO drops
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'feed';
    FOREACH drop_statement IN ARRAY coalesce(drops, '{}') LOOP
        EXECUTE drop_statement;
    END LOOP;

    SELECT array_agg('DROP '
                     || CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                       WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END
                     || ' IF EXISTS ' || c.oid::regclass::text || ' CASCADE') INTO drops
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'feed' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND c.relname <> 'alembic_version'
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid);
    FOREACH drop_statement IN ARRAY coalesce(drops, '{}') LOOP
        EXECUTE drop_statement;
    END LOOP;

    SELECT array_agg('DROP SEQUENCE IF EXISTS ' || c.oid::regclass::text || ' CASCADE') INTO drops
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'feed' AND c.relkind = 'S';
    FOREACH drop_statement IN ARRAY coalesce(drops, '{}') LOOP
        EXECUTE drop_statement;
    END LOOP;

    SELECT array_agg('DROP TYPE IF EXISTS ' || t.oid::regtype::text || ' CASCADE') INTO drops
    FROM pg_catalog.pg_type t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_class c ON c.oid = t.typrelid
    WHERE n.nspname = 'feed'
      AND (t.typtype IN ('d', 'e', 'r', 'm') OR (t.typtype = 'c' AND c.relkind = 'c'));
    FOREACH drop_statement IN ARRAY coalesce(drops, '{}') LOOP
        EXECUTE drop_statement;
    END LOOP;

    IF created_vector THEN
        BEGIN
            DROP EXTENSION IF EXISTS vector;  -- no CASCADE: keep it if the host uses it by now
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'pgvector kept: objects outside pgfeed depend on it';
        END;
    END IF;
END
$uninstall$;
"""


def upgrade() -> None:
    op.execute(BASELINE_SQL.read_text())


def downgrade() -> None:
    op.execute(UNINSTALL_SQL)
