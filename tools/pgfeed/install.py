"""Bring a database to head: schema revisions, then the idempotent SQL functions.

A fresh database gets ``sql/schema/schema.sql`` (the whole current schema) and
is stamped at the alembic head; an existing one is upgraded through the alembic
revisions. Then every ``sql/functions/*.sql`` file is applied, in name order,
unless the same files were already applied. All of it runs in one transaction
under an advisory lock: two concurrent runs are safe, and a failing run leaves
the database as it was.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from . import distribution, resources

# pg_advisory_xact_lock key: the bytes of "pgfeed" as a bigint
MIGRATION_LOCK_KEY = int.from_bytes(b"pgfeed", "big")
VERSION_TABLE_SCHEMA = "feed"
VERSION_TABLE = "alembic_version"
DEFAULT_EMBEDDING_DIM = 384
MAX_EMBEDDING_DIM = 16000  # pgvector's limit for the vector type
VECTOR_SCHEMA_TOKEN = "@extschema:vector@"
# pgfeed's own roles (sql/functions/90_security.sql); cluster-wide
ROLES = ("pgfeed_admin", "pgfeed_viewer", "pgfeed_app")
# The search_path every pgfeed DDL statement runs under: nothing a non-owner
# can create objects in. Trigger conditions, CHECK constraints and defaults
# are bound to operators when they are created, so a look-alike operator
# planted in public must not be on the path then. pgvector is named with its
# schema instead (VECTOR_SCHEMA_TOKEN).
SAFE_SEARCH_PATH = "pg_catalog, pg_temp"


class MigrationError(Exception):
    """Migrating cannot proceed (the message says why and what to do)."""


@dataclass
class MigrationReport:
    fresh_install: bool = False
    revision_before: str | None = None
    revision_after: str | None = None
    functions_applied: bool = False
    function_files: list[str] = field(default_factory=list)
    embedding_dim: int | None = None
    # the repair step: what differed from sql/manifest.json and was set back,
    # what differs and was left (never dropped: not pgfeed's), why it was skipped
    repairs: list[str] = field(default_factory=list)
    repair_failures: list[str] = field(default_factory=list)
    not_repaired: list[str] = field(default_factory=list)
    repair_skipped: str | None = None
    # on a Citus coordinator: what migrate found (pgfeed.distribution); None elsewhere
    citus: str | None = None
    # on a Citus coordinator with workers: the distribution steps this run took
    distributed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return (self.fresh_install or self.functions_applied or self.revision_before != self.revision_after
                or bool(self.repairs) or bool(self.distributed))


# ---------------------------------------------------------------------------
# function files

def function_files(sql_dir: Path | None = None) -> list[Path]:
    directory = (sql_dir or resources.sql_dir()) / "functions"
    return sorted(directory.glob("*.sql"))


def vector_schema(conn: psycopg.Connection, default: str | None = None) -> str:
    """The schema pgvector lives in (public, extensions on Supabase, or its own).

    ``default`` answers for a database without pgvector (schema.sql creates it
    in public); without a default that is an error."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ).fetchone()
    if row is None:
        if default is not None:
            return default
        raise MigrationError("the pgvector extension is not installed in this database")
    return row[0]


def render(text: str, vector_schema_name: str) -> str:
    """SQL text with pgvector's schema filled in, quoted as an identifier."""
    return text.replace(VECTOR_SCHEMA_TOKEN, '"' + vector_schema_name.replace('"', '""') + '"')


def render_functions(vector_schema_name: str, sql_dir: Path | None = None) -> list[tuple[str, str]]:
    """(file name, SQL) of every function file, with the pgvector schema filled in."""
    return [(path.name, render(path.read_text(), vector_schema_name)) for path in function_files(sql_dir)]


def render_schema(vector_schema_name: str, sql_dir: Path | None = None) -> str:
    """sql/schema/schema.sql with the pgvector schema filled in."""
    return render(((sql_dir or resources.sql_dir()) / "schema" / "schema.sql").read_text(), vector_schema_name)


def use_safe_search_path(conn: psycopg.Connection, *extra_schemas: str) -> None:
    """Pin this transaction's search_path for DDL (SAFE_SEARCH_PATH, plus any
    schema a frozen revision needs unqualified)."""
    path = ", ".join(["pg_catalog", *(pgsql.Identifier(s).as_string(conn) for s in extra_schemas), "pg_temp"])
    conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [path])


def drop_unused_roles(conn: psycopg.Connection) -> list[str]:
    """After uninstalling from this database, drop pgfeed's roles unless another
    database still uses them (DROP ROLE refuses while any object of any
    database grants them something). Returns the roles dropped."""
    dropped = []
    for role in ROLES:
        if conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            continue
        try:
            with conn.transaction():
                conn.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(role)))
            dropped.append(role)
        except (psycopg.errors.DependentObjectsStillExist, psycopg.errors.InsufficientPrivilege):
            pass
    return dropped


def functions_digest(rendered: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for name, text in rendered:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def apply_functions(conn: psycopg.Connection, sql_dir: Path | None = None, force: bool = False) -> bool:
    """Apply the function files unless the same ones were applied before.
    Returns whether anything ran."""
    rendered = render_functions(vector_schema(conn), sql_dir)
    digest = functions_digest(rendered)
    use_safe_search_path(conn)
    applied = conn.execute("SELECT value FROM feed.install_state WHERE key = 'functions_sha256'").fetchone()
    if applied and applied[0] == digest and not force:
        return False
    for name, text in rendered:
        try:
            conn.execute(text.encode())
        except psycopg.Error as exc:
            raise MigrationError(f"sql/functions/{name}: {exc}") from exc
    conn.execute(
        "INSERT INTO feed.install_state (key, value) VALUES ('functions_sha256', %s)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
        [digest],
    )
    return True


# ---------------------------------------------------------------------------
# embedding dimension

def embedding_dimension(conn: psycopg.Connection) -> int | None:
    row = conn.execute(
        "SELECT a.atttypmod FROM pg_catalog.pg_attribute a"
        " WHERE a.attrelid = 'feed.posts'::regclass AND a.attname = 'embedding' AND NOT a.attisdropped"
    ).fetchone()
    return row[0] if row and row[0] > 0 else None


def set_embedding_dimension(conn: psycopg.Connection, dim: int) -> None:
    """Give every vector column of schema feed the dimension ``dim``.

    Only possible while those columns hold no vectors: changing the dimension of
    stored embeddings means recomputing them, which is the host's job."""
    if not 1 <= dim <= MAX_EMBEDDING_DIM:
        raise MigrationError(f"--embedding-dim must be between 1 and {MAX_EMBEDDING_DIM}, got {dim}")
    columns = conn.execute(
        "SELECT c.relname, a.attname, a.atttypmod FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
        " WHERE n.nspname = 'feed' AND c.relkind IN ('r', 'p') AND t.typname = 'vector'"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2"
    ).fetchall()
    for table, column, current in columns:
        if current == dim:
            continue
        ident_table = pgsql.Identifier("feed", table)
        ident_column = pgsql.Identifier(column)
        in_use = conn.execute(
            pgsql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS NOT NULL)").format(ident_table, ident_column)
        ).fetchone()[0]
        if in_use:
            raise MigrationError(
                f"feed.{table}.{column} already holds vectors of dimension {current}; "
                f"it cannot become {dim} (clear the embeddings first, then migrate again)"
            )
        conn.execute(
            pgsql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}.vector({})").format(
                ident_table, ident_column, pgsql.Identifier(vector_schema(conn)), pgsql.Literal(dim)
            )
        )


# ---------------------------------------------------------------------------
# alembic plumbing

def alembic_config(dsn: str | None = None, output: io.StringIO | None = None):
    from alembic.config import Config

    cfg = Config(str(resources.alembic_ini()), output_buffer=output)
    cfg.set_main_option("script_location", str(resources.alembic_dir()))
    if dsn:
        cfg.attributes["dsn"] = dsn
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: psycopg.Connection) -> str | None:
    exists = conn.execute("SELECT to_regclass('feed.alembic_version') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    row = conn.execute("SELECT version_num FROM feed.alembic_version").fetchone()
    return row[0] if row else None


def feed_schema_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'feed')").fetchone()[0]


def sqlalchemy_engine(dsn: str):
    """An SQLAlchemy engine over psycopg for alembic; any libpq DSN works."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=NullPool)


def stamp_head(sa_conn) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    context = MigrationContext.configure(
        sa_conn, opts={"version_table": VERSION_TABLE, "version_table_schema": VERSION_TABLE_SCHEMA}
    )
    context.stamp(ScriptDirectory.from_config(alembic_config()), "head")


def upgrade_to_head(sa_conn) -> None:
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = sa_conn
    cfg.attributes["skip_functions"] = True  # migrate() applies them itself, once
    command.upgrade(cfg, "head")


# ---------------------------------------------------------------------------
# the whole job

def migrate(
    dsn: str,
    embedding_dim: int | None = None,
    force_functions: bool = False,
    distribute: bool = True,
) -> MigrationReport:
    """Bring the database at ``dsn`` to head. One transaction, one advisory lock.
    On a Citus coordinator with workers, then distribute what is not yet
    (``distribute=False`` leaves that to a later run, e.g. after a bulk load)."""
    report = MigrationReport()
    engine = sqlalchemy_engine(dsn)
    try:
        with engine.begin() as sa_conn:
            conn: psycopg.Connection = sa_conn.connection.driver_connection
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
            if distribution.citus_version(conn) is not None:
                # the function files replace triggers on tables Citus may already hold,
                # and grant to the roles on every node
                conn.execute("SET LOCAL citus.enable_unsafe_triggers = on")
                distribution.ensure_roles_on_workers(conn)
            report.revision_before = current_revision(conn)
            if report.revision_before is None:
                if feed_schema_exists(conn):
                    raise MigrationError(
                        "schema feed exists but has no pgfeed migration history; "
                        "drop it or restore the feed.alembic_version table before migrating"
                    )
                use_safe_search_path(conn)
                conn.execute(render_schema(vector_schema(conn, default="public")).encode())
                stamp_head(sa_conn)
                report.fresh_install = True
            else:
                # frozen revisions name pgvector's types unqualified
                use_safe_search_path(conn, vector_schema(conn))
                upgrade_to_head(sa_conn)
            report.revision_after = current_revision(conn)

            if embedding_dim is not None and embedding_dim != embedding_dimension(conn):
                set_embedding_dimension(conn, embedding_dim)
            report.embedding_dim = embedding_dimension(conn)

            report.function_files = [p.name for p in function_files()]
            report.functions_applied = apply_functions(conn, force=force_functions)

            # a fresh install has the manifest's shape by construction (tests/test_doctor.py)
            if not report.fresh_install:
                repair_shape(conn, report)

    finally:
        engine.dispose()
    # on a Citus coordinator with workers: distribute what is not yet (docs/distributed.md),
    # each step its own transaction, after the schema and the functions are in place
    if distribute:
        report.distributed = distribution.distribute(dsn)
    with psycopg.connect(dsn) as conn:
        cluster = distribution.citus_status(conn)
    report.citus = cluster.summary() if cluster else None
    return report


# ---------------------------------------------------------------------------
# repair: what differs from the installed shape (sql/manifest.json)

def repair_shape(conn: psycopg.Connection, report: MigrationReport) -> None:
    """Set back what differs from this version's manifest, each repair in its
    own savepoint (see pgfeed.repair); record it all in ``report``."""
    from . import repair
    from . import shape as shapes

    manifest = shapes.load_manifest()
    if not shapes.manifest_is_current(manifest):
        report.repair_skipped = ("sql/manifest.json was generated from other SQL files; "
                                 f"regenerate it ({shapes.REGENERATE_COMMAND})")
        return
    path = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()[0]
    dim = embedding_dimension(conn)
    failures: dict[str, str] = {}

    def differences():
        return shapes.compare(manifest["shape"], shapes.read_shape(conn), dim)

    try:
        found = differences()
        repairs, _ = repair.plan(conn, manifest, dim, found)
        for _ in range(2):  # a second pass for what the first one changed (re-applied functions, grants)
            if not repairs:
                break
            for item in repairs:
                try:
                    with conn.transaction():
                        if item.sql == repair.REAPPLY_FUNCTIONS:
                            apply_functions(conn, force=True)
                        else:
                            use_safe_search_path(conn)  # what the manifest's definitions were read under
                            conn.execute(item.sql.encode())
                except (psycopg.Error, MigrationError) as exc:
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    failures[item.what] = f"{item.what}: {first_line}"
                    continue
                failures.pop(item.what, None)
                if item.what not in report.repairs:
                    report.repairs.append(item.what)
                if item.sql == repair.REAPPLY_FUNCTIONS:
                    report.functions_applied = True
            found = differences()
            repairs, _ = repair.plan(conn, manifest, dim, found)
        report.repair_failures = list(failures.values())
        report.not_repaired = [str(d) for d in found]
    finally:
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [path])


def repair_sql(conn: psycopg.Connection) -> str:
    """The repair statements migrate would run against the database of ``conn`` (at head)."""
    from . import repair
    from . import shape as shapes

    manifest = shapes.load_manifest()
    if not shapes.manifest_is_current(manifest):
        return f"-- repairs skipped: sql/manifest.json is stale ({shapes.REGENERATE_COMMAND})\n"
    repairs, left = repair.plan(conn, manifest, embedding_dimension(conn))
    if not repairs and not left:
        return "-- nothing differs from the installed shape (sql/manifest.json)\n"
    out = ["-- repairs: what differs from the installed shape (sql/manifest.json)"]
    if repairs:
        out.append(f"SELECT pg_catalog.set_config('search_path', '{SAFE_SEARCH_PATH}', true);")
    for item in repairs:
        out.append(f"-- {item.what}")
        if item.sql == repair.REAPPLY_FUNCTIONS:
            out.append("--   (the function files below are applied)")
        else:
            out.append(item.sql + ";")
    for item in left:
        out.append(f"-- not repaired: {item}")
    return "\n".join(out) + "\n"


def migration_sql(dsn: str | None, embedding_dim: int | None = None) -> str:
    """The SQL `migrate` would run against ``dsn`` (or a fresh database), for review."""
    out = io.StringIO()
    revision = None
    vector_schema_name = "public"
    repairs = None
    cluster = None
    if dsn:
        with psycopg.connect(dsn) as conn:
            cluster = distribution.citus_status(conn)
            revision = current_revision(conn)
            vector_schema_name = vector_schema(conn, default="public")
            if revision is not None and revision == head_revision():
                repairs = repair_sql(conn)
    quoted_vector_schema = pgsql.Identifier(vector_schema_name).as_string(None)
    out.write("-- pgfeed migrate --sql: review, then run with psql -1 -v ON_ERROR_STOP=1 -f\n")
    out.write(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY});\n")
    out.write(f"SELECT pg_catalog.set_config('search_path', '{SAFE_SEARCH_PATH}', true);\n\n")
    if cluster is not None:
        out.write(f"-- {cluster.summary()}\n")
        out.write("-- after this script, migrate distributes (docs/distributed.md): see the end\n\n"
                  if cluster.workers else "\n")
    if revision is None:
        out.write("-- fresh install: sql/schema/schema.sql\n")
        out.write(render_schema(vector_schema_name))
        out.write(
            f"\nCREATE TABLE {VERSION_TABLE_SCHEMA}.{VERSION_TABLE} (version_num VARCHAR(32) NOT NULL,"
            f" CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num));\n"
            f"INSERT INTO {VERSION_TABLE_SCHEMA}.{VERSION_TABLE} (version_num) VALUES ('{head_revision()}');\n"
        )
        if embedding_dim is not None and embedding_dim != DEFAULT_EMBEDDING_DIM:
            out.write(f"ALTER TABLE feed.posts ALTER COLUMN embedding TYPE vector({embedding_dim});\n")
    elif revision != head_revision():
        from alembic import command

        buffer = io.StringIO()
        cfg = alembic_config(dsn, output=buffer)
        command.upgrade(cfg, f"{revision}:head", sql=True)
        out.write(f"-- schema revisions {revision} -> head (frozen files name pgvector's types unqualified)\n")
        out.write(f"SELECT pg_catalog.set_config('search_path', 'pg_catalog, {quoted_vector_schema}, pg_temp', true);\n")
        out.write(buffer.getvalue())
        out.write(f"SELECT pg_catalog.set_config('search_path', '{SAFE_SEARCH_PATH}', true);\n")
    else:
        out.write(f"-- schema already at head ({revision})\n")
    for name, text in render_functions(vector_schema_name):
        out.write(f"\n-- sql/functions/{name}\n{text}")
    if repairs is not None:
        out.write("\n" + repairs)
    elif revision is not None:
        out.write("\n-- repairs (missing or invalid indexes, constraints, grants) are computed at head:"
                  " run pgfeed migrate --sql again after this upgrade\n")
    if cluster is not None and cluster.workers:
        with psycopg.connect(dsn) as conn:
            if revision is not None:
                steps = distribution.distribution_sql(conn)
            else:
                steps = ("-- distribution on the Citus cluster: computed once the schema is installed;"
                         " run pgfeed migrate --sql again after this script\n")
        out.write("\n" + (steps or "-- distribution: everything is in place\n"))
    return out.getvalue()
