"""CLI for the foundation: migrate, status, server; errors are one line, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from pgfeed.cli import cli

from .schema_snapshot import feed_schema_exists


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point in a subprocess, to see real exit codes and stderr."""
    return subprocess.run([sys.executable, "-m", "pgfeed.cli", *args], capture_output=True, text=True)


def test_migrate_then_noop(empty_database):
    _, dsn = empty_database
    runner = CliRunner()
    first = runner.invoke(cli, ["migrate", "--dsn", dsn, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["fresh_install"] is True
    second = runner.invoke(cli, ["migrate", "--dsn", dsn, "--json"])
    report = json.loads(second.output)
    assert report["changed"] is False and report["revision_after"] == report["revision_before"]


def test_migrate_human_output_and_status(empty_database):
    _, dsn = empty_database
    result = CliRunner().invoke(cli, ["migrate", "--dsn", dsn])
    assert result.exit_code == 0
    assert "installed pgfeed schema" in result.output and "migrated: True" in result.output
    status = json.loads(CliRunner().invoke(cli, ["status", "--dsn", dsn, "--json"]).output)
    assert status["migrated"] is True and status["embedding_dim"] == 384 and status["pgvector"]


def test_migrate_sql_does_not_touch_the_database(empty_database):
    _, dsn = empty_database
    result = CliRunner().invoke(cli, ["migrate", "--sql", "--dsn", dsn])
    assert result.exit_code == 0 and "CREATE TABLE feed.posts" in result.output
    assert not feed_schema_exists(dsn)


def test_dsn_comes_from_the_environment(empty_database, monkeypatch):
    _, dsn = empty_database
    monkeypatch.setenv("PGFEED_DSN", dsn)
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    assert feed_schema_exists(dsn)


def test_unreachable_server_is_one_line_and_exit_3():
    result = run_cli("status", "--dsn", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert result.returncode == 3
    assert result.stderr.startswith("pgfeed: error: cannot reach the database")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_sql_error_shows_sqlstate(empty_database):
    _, dsn = empty_database
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA feed")  # a schema pgfeed did not create
    result = run_cli("migrate", "--dsn", dsn)
    assert result.returncode == 1
    assert result.stderr.startswith("pgfeed: error: ") and "no pgfeed migration history" in result.stderr and "Traceback" not in result.stderr


def test_embedded_server_lifecycle():
    root = Path(tempfile.mkdtemp(prefix="pgfeed-cli-", dir="/tmp"))
    data_dir = str(root / "pgdata")
    try:
        assert run_cli("server", "status", "--data-dir", data_dir).returncode == 3
        url = run_cli("server", "url", "--data-dir", data_dir)
        assert url.returncode == 0, url.stderr
        dsn = url.stdout.strip()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "pgfeed"
        migrated = run_cli("migrate", "--data-dir", data_dir)
        assert migrated.returncode == 0, migrated.stderr
        assert feed_schema_exists(dsn)
        assert run_cli("server", "status", "--data-dir", data_dir).returncode == 0
        assert run_cli("server", "stop", "--data-dir", data_dir).stdout.strip() == "stopped"
        assert run_cli("server", "status", "--data-dir", data_dir).returncode == 3
    finally:
        run_cli("server", "stop", "--data-dir", data_dir)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("command", [["--help"], ["migrate", "--help"], ["server", "url", "--help"],
                                     ["status", "--help"]])
def test_help_has_an_example(command):
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0
    assert "Example" in result.output
