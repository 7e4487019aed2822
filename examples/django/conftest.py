"""The example's test database: a real PostgreSQL with pgvector, pgfeed migrated in
it, then the site's Django migrations (which add the triggers to feed.*).

The server is the one named by PGFEED_TEST_DSN (a user that may create databases),
or else pgfeed's embedded server, started in a temporary directory and stopped at
the end. Each test runs in a transaction rolled back afterwards (pytest-django's `db`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgfeed import install


@pytest.fixture(scope="session")
def pg_server_dsn():
    given = os.environ.get("PGFEED_TEST_DSN", "").strip()
    if given:
        yield given
        return
    from pgfeed.database import start_embedded, stop_embedded

    root = Path(tempfile.mkdtemp(prefix="pgfeed-django-", dir="/tmp"))  # short: socket paths
    try:
        status = start_embedded(root / "pgdata", tune=False)
        yield status.dsn("postgres")
    finally:
        stop_embedded(root / "pgdata")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_setup(pg_server_dsn, django_db_blocker):
    """Replaces pytest-django's test database creation: pgfeed first, then Django."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    name = f"feedsite_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(pg_server_dsn)
    dsn = make_conninfo(pg_server_dsn, dbname=name)
    install.migrate(dsn)  # what `pgfeed migrate --dsn ...` does
    for conn in connections.all():
        conn.close()
    # in place: Django's connection holds this very dict
    settings.DATABASES["default"].update(NAME=name, HOST=params.get("host", ""), PORT=params.get("port", ""),
                                         USER=params.get("user", ""), PASSWORD=params.get("password", ""))
    with django_db_blocker.unblock():
        call_command("migrate", verbosity=0)
    try:
        yield dsn
    finally:
        with django_db_blocker.unblock():
            for conn in connections.all():
                conn.close()
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def feed_dsn(django_db_setup):
    """A DSN of the test database, for checks from outside Django's connection."""
    return django_db_setup
