"""The CLI's conventions (docs/cli.md): where the database comes from, one error format
with documented exit codes and no traceback, --json on every read command, readable
output, and progress only where a person watches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from psycopg.conninfo import conninfo_to_dict

from pgfeed import database
from pgfeed.cli import EXIT_FAILURE, EXIT_NOT_MIGRATED, EXIT_UNAVAILABLE, EXIT_USAGE, cli, human_duration, \
    humanize_timedeltas

from .helpers import add_post

LIBPQ = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE")
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"


def clean_env(**extra: str) -> dict:
    """The environment of a subprocess: no database named anywhere but in ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PGFEED_DSN", "DATABASE_URL", *LIBPQ)}
    env.update(extra)
    return env


def run_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgfeed.cli", *args], capture_output=True, text=True,
                          env=env if env is not None else clean_env())


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_error_line(result, code: int, prefix: str = "pgfeed: error"):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


# ---------------------------------------------------------------------------
# where the database is

@pytest.fixture
def no_database_env(monkeypatch):
    for name in ("PGFEED_DSN", "DATABASE_URL", *LIBPQ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_dsn_resolution_order(no_database_env):
    env = no_database_env
    assert database.configured_dsn(None) is None
    env.setenv("PGUSER", "alice")
    env.setenv("PGDATABASE", "app")
    assert conninfo_to_dict(database.configured_dsn(None)) == {"user": "alice", "dbname": "app"}
    env.setenv("PGPASSWORD", "secret")
    assert "secret" not in database.configured_dsn(None)  # libpq reads it from the environment
    env.setenv("PGSERVICE", "prod")
    assert conninfo_to_dict(database.configured_dsn(None)) == {"service": "prod"}
    env.setenv("DATABASE_URL", "postgresql+psycopg://u@h/from_url")
    assert database.configured_dsn(None) == "postgresql://u@h/from_url"
    env.setenv("PGFEED_DSN", "postgresql://u@h/from_pgfeed")
    assert database.configured_dsn(None) == "postgresql://u@h/from_pgfeed"
    assert database.configured_dsn("postgresql://u@h/option") == "postgresql://u@h/option"


def test_only_a_password_still_means_libpq(no_database_env):
    no_database_env.setenv("PGPASSWORD", "secret")
    dsn = database.configured_dsn(None)
    assert dsn and "secret" not in dsn


def test_libpq_variables_reach_the_database(db, db_dsn):
    params = conninfo_to_dict(db_dsn)
    env = clean_env(PGHOST=params["host"], PGPORT=str(params["port"]), PGUSER=params["user"],
                    PGDATABASE=params["dbname"])
    result = run_process("status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["database"] == params["dbname"]
    # DATABASE_URL wins over the PG* variables
    env["DATABASE_URL"] = UNREACHABLE
    assert run_process("status", env=env).returncode == EXIT_UNAVAILABLE


# ---------------------------------------------------------------------------
# errors and exit codes

@pytest.fixture
def world(db):
    for i in range(1, 13):
        add_post(db, i, author_id=100 + i % 4, category="art" if i % 2 else "music")
    db.execute("INSERT INTO feed.follows VALUES (1, 101)")
    return db


def test_bad_input_is_a_usage_error_without_traceback(world, db_dsn):
    bad_json = run_process("feed", "1", "--context", "notjson", "--dsn", db_dsn)
    assert_one_error_line(bad_json, EXIT_USAGE)
    assert "--context" in bad_json.stderr and "not JSON" in bad_json.stderr
    not_an_object = run_process("explain", "1", "2", "--context", "[1, 2]", "--dsn", db_dsn)
    assert_one_error_line(not_an_object, EXIT_USAGE)
    for args in (["feed", "1", "--page-size", "x"], ["similar", "abc"], ["explain", "1", "1.5"],
                 ["feed", "bob"], ["nonsense"], ["feed", "1", "--no-such-option"]):
        assert_one_error_line(run_process(*args, "--dsn", db_dsn), EXIT_USAGE)


def test_database_errors_carry_the_sqlstate(world, db_dsn):
    result = run_process("similar", "999", "--dsn", db_dsn)
    assert_one_error_line(result, EXIT_FAILURE, "pgfeed: error [23503]: ")
    assert len(result.stderr.strip().splitlines()) == 1
    bad_profile = run_process("feed", "1", "--profile", "nope", "--dsn", db_dsn)
    assert_one_error_line(bad_profile, EXIT_FAILURE, "pgfeed: error [22023]: ")
    unknown_profile = run_process("profiles", "show", "nope", "--dsn", db_dsn)
    assert_one_error_line(unknown_profile, EXIT_FAILURE, "pgfeed: error: unknown profile")


def test_unreachable_and_unmigrated(empty_database):
    assert_one_error_line(run_process("feed", "1", "--dsn", UNREACHABLE), EXIT_UNAVAILABLE,
                          "pgfeed: error: cannot reach the database")
    assert_one_error_line(run_process("settings", "list", "--dsn", "not a dsn at all"), EXIT_UNAVAILABLE)
    _, dsn = empty_database
    assert_one_error_line(run_process("settings", "list", "--dsn", dsn), EXIT_NOT_MIGRATED)


def test_errors_have_the_same_format_under_click_runner(world, db_dsn):
    result = CliRunner().invoke(cli, ["feed", "1", "--page-size", "0", "--dsn", db_dsn])
    assert result.exit_code == EXIT_FAILURE
    assert result.stderr.startswith("pgfeed: error [22023]: p_page_size")


def test_settings_set_takes_a_negative_value_without_dashes(db, db_dsn):
    refused = run_process("settings", "set", "epsilon", "-1", "--dsn", db_dsn)
    assert_one_error_line(refused, EXIT_FAILURE, "pgfeed: error [22023]: ")
    assert "epsilon" in refused.stderr
    assert db.execute("SELECT value FROM feed.settings WHERE name = 'epsilon'").fetchone()[0] == "0.10"
    # options after the value still work
    assert invoke("settings", "set", "epsilon", "0.2", "--dsn", db_dsn, "--json").exit_code == 0
    assert db.execute("SELECT value FROM feed.settings WHERE name = 'epsilon'").fetchone()[0] == "0.2"


# ---------------------------------------------------------------------------
# --json everywhere

READ_COMMANDS = [
    ["status"], ["settings", "list"], ["settings", "get", "cooldown"], ["profiles", "list"],
    ["profiles", "show", "social"], ["feed", "1"], ["feed", "anon", "--mode", "trending"], ["explain", "1", "2"],
    ["similar", "2"], ["doctor"], ["heartbeat"], ["maintenance"], ["recs", "build"], ["migrate"], ["adopt", "list"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=[" ".join(c) for c in READ_COMMANDS])
def test_every_read_command_prints_json(world, db_dsn, command):
    world.execute("SELECT feed.run_maintenance()")
    result = CliRunner().invoke(cli, [*command, "--dsn", db_dsn, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)


def test_writes_print_json_too(db, db_dsn):
    assert json.loads(invoke("settings", "set", "cooldown", "14 days", "--dsn", db_dsn, "--json").stdout) == {
        "name": "cooldown", "value": "14 days"}
    assert json.loads(invoke("settings", "reset", "cooldown", "--dsn", db_dsn, "--json").stdout)["value"] == "30 days"
    saved = json.loads(invoke("profiles", "set", "mine", "--weight", "trending=1", "--dsn", db_dsn, "--json").stdout)
    assert saved["name"] == "mine" and saved["weights"] == {"trending": 1}


def test_bench_json_is_a_flag():
    option = {p.name: p for p in cli.commands["bench"].params}
    assert option["as_json"].is_flag and not option["output_path"].is_flag


# ---------------------------------------------------------------------------
# readable output

def test_rich_markup_in_data_prints_literally(db, db_dsn):
    assert invoke("profiles", "set", "mine", "--weight", "social_tie=1", "--description",
                  "[follows author] first, [bold]not bold[/bold]", "--dsn", db_dsn).exit_code == 0
    listed = invoke("profiles", "list", "--dsn", db_dsn)
    text = " ".join(listed.stdout.split())
    assert "[follows author]" in text and "[bold]not" in text


def test_durations_are_readable():
    assert human_duration(15.451418) == "15 s"
    assert human_duration(4.25) == "4.2 s"
    assert human_duration(250) == "4 min 10 s"
    assert human_duration(3 * 3600 + 300) == "3 h 5 min"
    assert human_duration(3 * 86400 + 3600) == "3 d 1 h"
    assert humanize_timedeltas("last ran 0:00:15.451418 ago") == "last ran 15 s ago"
    assert humanize_timedeltas("last ran 3 days, 1:00:00 ago") == "last ran 3 d 1 h ago"


def test_doctor_and_status_show_readable_durations(world, db_dsn):
    world.execute("SELECT feed.run_maintenance()")
    doctor = invoke("doctor", "--dsn", db_dsn)
    assert doctor.exit_code == 0
    line = next(line for line in doctor.stdout.splitlines() if "heartbeat" in line)
    assert " s ago" in line and "0:00" not in line
    status = invoke("status", "--dsn", db_dsn).stdout
    assert "last heartbeat:" in status and " s ago" in status


def test_server_url_names_a_database():
    option = {p.name: p for p in cli.commands["server"].commands["url"].params}
    assert option["database_name"].default == "pgfeed"


def test_progress_goes_to_stderr_when_asked(db, db_dsn, tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text("post_id,author_id,category\n" + "".join(f"{i},{i % 5},art\n" for i in range(1, 200)))
    result = run_process("import", "posts", str(path), "--dsn", db_dsn, env=clean_env(PGFEED_PROGRESS="1"))
    assert result.returncode == 0, result.stderr
    assert "reading posts.csv" in result.stderr
    assert result.stdout.startswith("imported posts from posts.csv: 199 rows, 199 new")
    quiet = run_process("recs", "build", "--dsn", db_dsn, "--json", env=clean_env(PGFEED_PROGRESS="0"))
    assert quiet.returncode == 0 and quiet.stderr == "" and json.loads(quiet.stdout)["recommendations"] == 0


def test_cli_py_is_the_table_of_contents():
    assert set(cli.commands) >= {"migrate", "status", "server", "feed", "explain", "similar", "heartbeat",
                                 "maintenance", "recs", "seed", "import", "settings", "profiles", "doctor", "demo",
                                 "bench", "eval"}
    # a command of another module joins with one add_command line and gets the same error handling
    extra = click.Command("fails-for-test", callback=lambda: (_ for _ in ()).throw(
        database.DatabaseUnavailable("nothing there")))
    cli.add_command(extra)
    try:
        result = CliRunner().invoke(cli, ["fails-for-test"])
        assert result.exit_code == EXIT_UNAVAILABLE and result.stderr == "pgfeed: error: nothing there\n"
    finally:
        del cli.commands["fails-for-test"]
