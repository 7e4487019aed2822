"""Alembic environment for pgfeed.

Used two ways:
- `pgfeed migrate` hands in its own connection (config.attributes["connection"])
  and applies the SQL functions itself;
- `alembic upgrade head` / `alembic downgrade base` from the repository root
  connect with `-x dsn=...`, PGFEED_DSN or DATABASE_URL, take the same advisory
  lock, and after reaching head re-apply sql/functions/*.sql; after reaching
  base they remove the (then empty) schema feed.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import context

from pgfeed import install
from pgfeed.database import dsn_from_environment, normalize_dsn

config = context.config
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
VERSION_OPTS = {"version_table": install.VERSION_TABLE, "version_table_schema": install.VERSION_TABLE_SCHEMA}


def _dsn() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    dsn = x_args.get("dsn") or config.attributes.get("dsn") or dsn_from_environment()
    if not dsn:
        raise SystemExit("pgfeed alembic: no database; pass -x dsn=... or set PGFEED_DSN or DATABASE_URL")
    return normalize_dsn(dsn)


def _embedding_dim() -> int | None:
    value = context.get_x_argument(as_dictionary=True).get("embedding_dim")
    return int(value) if value else None


def run_migrations_offline() -> None:
    context.configure(url="postgresql+psycopg://", literal_binds=True, transactional_ddl=True, **VERSION_OPTS)
    with context.begin_transaction():
        context.run_migrations()


def _migrate(sa_conn, standalone: bool) -> None:
    driver = sa_conn.connection.driver_connection
    if standalone:
        driver.execute("SELECT pg_advisory_xact_lock(%s)", [install.MIGRATION_LOCK_KEY])
        # the version table lives in schema feed, which must exist before alembic creates it
        driver.execute("CREATE SCHEMA IF NOT EXISTS feed")
        # Frozen revisions name pgvector's types unqualified: pgvector's schema is on the
        # path, and nothing else. Before the first revision created pgvector, the session's
        # own path stays (CREATE EXTENSION puts it in the first schema of the path).
        if install.vector_schema(driver, default=""):
            install.use_safe_search_path(driver, install.vector_schema(driver))
    context.configure(connection=sa_conn, transactional_ddl=True, **VERSION_OPTS)
    with context.begin_transaction():
        context.run_migrations()
    if not standalone or config.attributes.get("skip_functions"):
        return
    revision = install.current_revision(driver)
    if revision is None:
        # base: every object of pgfeed's is gone but the version table and the schema;
        # the roles go too unless another database of this server still uses them
        driver.execute("DROP SCHEMA IF EXISTS feed CASCADE")
        install.drop_unused_roles(driver)
    elif revision == context.get_context().script.get_current_head():
        dim = _embedding_dim()
        if dim is not None:
            install.set_embedding_dimension(driver, dim)
        install.apply_functions(driver, SQL_DIR)


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _migrate(given, standalone=False)
        return
    engine = install.sqlalchemy_engine(_dsn())
    try:
        with engine.begin() as sa_conn:
            _migrate(sa_conn, standalone=True)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
