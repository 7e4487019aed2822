"""Test harness: a real PostgreSQL with pgvector, one migrated template, a clone per test.

The server is the embedded one (started once per test session in a temporary
directory) unless PGFEED_TEST_DSN names another. The template database is
built by the real migration path (`pgfeed.install.migrate`) once; every test
that asks for `db` gets a fresh clone of it through pytest-postgresql.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql import factories

from pgfeed import install


@dataclass
class Server:
    """What pytest-postgresql's noproc factory needs (`depends_on`), plus helpers."""

    host: str
    port: int
    user: str
    password: str | None
    maintenance_dbname: str
    options: str = ""
    template_dbname: str | None = None

    def dsn(self, dbname: str | None = None) -> str:
        return make_conninfo(
            host=self.host, port=self.port, user=self.user, password=self.password or None,
            dbname=dbname or self.maintenance_dbname,
        )

    def create_database(self, prefix: str = "pgfeed_t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_server(tmp_root: Path) -> Server:
    given = os.environ.get("PGFEED_TEST_DSN", "").strip()
    if given:
        params = conninfo_to_dict(given)
        return Server(
            host=params.get("host", "localhost"),
            port=int(params.get("port", 5432)),
            user=params.get("user", "postgres"),
            password=params.get("password"),
            maintenance_dbname=params.get("dbname", "postgres"),
        )
    from pgfeed.database import start_embedded

    # PostgreSQL's small defaults suit tests: no tuning restart
    status = start_embedded(tmp_root / "pgdata", tune=False)
    return Server(host=str(status.socket_dir), port=status.port, user="postgres", password=None,
                  maintenance_dbname="postgres")


@pytest.fixture(scope="session")
def pg_server():
    if os.environ.get("PGFEED_TEST_DSN", "").strip():
        yield _start_server(Path("."))
        return
    # a short, dedicated directory: Unix socket paths are limited to ~107 bytes
    root = Path(tempfile.mkdtemp(prefix="pgfeed-test-", dir="/tmp"))
    server = _start_server(root)
    try:
        yield server
    finally:
        from pgfeed.database import stop_embedded

        stop_embedded(root / "pgdata")
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def load_pgfeed(host, port, user, dbname, password=None, **kwargs):
    """pytest-postgresql loader: the real migration, once, into the template."""
    install.migrate(make_conninfo(host=host, port=port, user=user, dbname=dbname, password=password or None))


postgresql_noproc = factories.postgresql_noproc(
    dbname=f"pgfeed_test_{os.getpid()}", load=[load_pgfeed], depends_on="pg_server"
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def db(postgresql) -> psycopg.Connection:
    """A connection (autocommit) to a freshly cloned, migrated database."""
    postgresql.autocommit = True
    return postgresql


@pytest.fixture
def db_dsn(db) -> str:
    info = db.info
    return make_conninfo(host=info.host, port=info.port, user=info.user, dbname=info.dbname,
                         password=info.password or None)


@pytest.fixture
def empty_database(pg_server):
    """The name and DSN of a new, empty database, dropped afterwards."""
    name = pg_server.create_database()
    try:
        yield name, pg_server.dsn(name)
    finally:
        pg_server.drop_database(name)


# ---------------------------------------------------------------------------
# a real Citus cluster (tests marked `citus`; see tests/citus_cluster.py)

def pytest_configure(config):
    config.addinivalue_line("markers", "citus: runs on a real Citus cluster (a coordinator and two workers) "
                                       "started from this venv's embedded server")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def citus_cluster():
    """A coordinator and two workers for the whole session, stopped at its end.

    Skips, saying why, where Citus is not installed in this venv's embedded server;
    under CI=true that is a failure instead (CI installs the bundle, so the cluster
    tests must run there). With PGFEED_TEST_DSN (another server under test) the
    cluster tests are left to the embedded run."""
    from . import citus_cluster as cc

    if os.environ.get("PGFEED_TEST_DSN", "").strip():
        pytest.skip("PGFEED_TEST_DSN names another server: the Citus cluster tests run with the embedded server")
    reason = cc.citus_unavailable()
    if reason:
        if _in_ci():
            pytest.fail(f"CI must run the Citus cluster tests: {reason}")
        pytest.skip(reason)
    cluster = cc.start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
