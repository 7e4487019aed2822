"""The embedded server through the CLI, in a data directory of its own: the demo leaves its
world where every command looks, and a start after a crash waits for recovery.

No timing assumptions: the crash is a SIGKILL of the postmaster, and the start that
follows must succeed and answer a query however long recovery takes (within the
generous bound of database.START_TIMEOUT_SECONDS)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from pgfeed import database

LIBPQ = ("PGFEED_DSN", "DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE")


@pytest.fixture(scope="module")
def data_dir():
    # short: Unix socket paths are limited to ~107 bytes
    root = Path(tempfile.mkdtemp(prefix="pgfeed-emb-", dir="/tmp"))
    try:
        # PostgreSQL's small defaults suit a test: no tuning restart by the CLI
        database.start_embedded(root / "pgdata", tune=False)
        (root / "pgdata" / database.TUNED_MARKER).touch()
        yield root / "pgdata"
    finally:
        database.stop_embedded(root / "pgdata")
        shutil.rmtree(root, ignore_errors=True)


def pgfeed(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI with no database named anywhere: the embedded server in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if k not in LIBPQ}
    env["PGFEED_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "pgfeed.cli", *args], capture_output=True, text=True, env=env)


def test_after_the_demo_the_default_database_holds_its_world(data_dir):
    demo = pgfeed(data_dir, "demo", "--users", "60", "--posts", "400", "--interactions", "2500", "--seed", "3")
    assert demo.returncode == 0, demo.stderr
    assert "the world is in database pgfeed" in demo.stdout and "--dsn" not in demo.stdout
    doctor = pgfeed(data_dir, "doctor", "--json")
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0, report
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["pgvector"] == "ok" and statuses["migrations"] == "ok"
    page = pgfeed(data_dir, "feed", "1", "--json")
    assert page.returncode == 0, page.stderr
    assert len(json.loads(page.stdout)) == 12
    status = json.loads(pgfeed(data_dir, "status", "--json").stdout)
    assert status["database"] == "pgfeed" and status["posts"] == 400
    url = pgfeed(data_dir, "server", "url", "--database", "postgres").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "postgres"
    # the demo runs again over its own world
    again = pgfeed(data_dir, "demo", "--users", "50", "--posts", "300", "--interactions", "2000")
    assert again.returncode == 0, again.stderr
    assert json.loads(pgfeed(data_dir, "status", "--json").stdout)["posts"] == 300


def kill_postmaster(pid: int) -> None:
    """SIGKILL, then wait until the process is gone (or a zombie nothing reaps): a
    condition, not a delay."""
    import time

    import psutil

    os.kill(pid, signal.SIGKILL)
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def test_start_after_a_crash_waits_for_recovery(data_dir):
    status = database.start_embedded(data_dir, tune=False)
    with psycopg.connect(status.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE crash_probe AS SELECT g FROM generate_series(1, 100000) g")
    kill_postmaster(status.pid)

    started = pgfeed(data_dir, "server", "start")
    assert started.returncode == 0, started.stderr
    assert "running" in started.stdout and "Traceback" not in started.stderr
    assert "recovery" in started.stderr or "redo" in started.stderr or "interrupted" in started.stderr
    with psycopg.connect(database.embedded_status(data_dir).dsn()) as conn:
        assert conn.execute("SELECT count(*) FROM crash_probe").fetchone()[0] == 100000

    # and again, through the library call every command makes
    kill_postmaster(database.embedded_status(data_dir).pid)
    again = database.start_embedded(data_dir, tune=False)
    with psycopg.connect(again.dsn()) as conn:
        assert conn.execute("SELECT count(*) FROM crash_probe").fetchone()[0] == 100000
    assert pgfeed(data_dir, "server", "status").returncode == 0
