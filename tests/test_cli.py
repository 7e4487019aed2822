"""The operator's CLI through click's CliRunner against the test database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pgfeed.cli import cli

from .helpers import add_post


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_process(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgfeed.cli", *args], capture_output=True, text=True)


@pytest.fixture
def small_world(db):
    for i in range(1, 31):
        add_post(db, i, author_id=100 + i % 6, category=["art", "music"][i % 2], age=f"{i} hours",
                 like_count=i % 7)
    db.execute("INSERT INTO feed.follows VALUES (1, 101), (1, 102)")
    return db


def test_feed_json_and_table(small_world, db_dsn):
    result = run("feed", "1", "--page-size", "5", "--dsn", db_dsn, "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert set(rows[0]) == {"rank", "post_id", "author_id", "score", "source", "is_repeat", "reasons", "next_cursor"}
    nxt = run("feed", "1", "--page-size", "5", "--after", rows[0]["next_cursor"], "--dsn", db_dsn, "--json")
    assert not {r["post_id"] for r in json.loads(nxt.output)} & {r["post_id"] for r in rows}
    table = run("feed", "1", "--page-size", "3", "--dsn", db_dsn, "--profile", "social")
    assert table.exit_code == 0 and "next page: pgfeed feed 1" in table.output and "feed of 1" in table.output


def test_feed_for_an_anonymous_viewer(small_world, db_dsn):
    rows = json.loads(run("feed", "anon", "--page-size", "4", "--dsn", db_dsn, "--json").output)
    assert {r["source"] for r in rows} == {"chronological"}


def test_feed_errors_are_one_line_with_the_sqlstate(small_world, db_dsn):
    result = run_process("feed", "1", "--page-size", "0", "--dsn", db_dsn)
    assert result.returncode == 1
    assert result.stderr.startswith("pgfeed: error [22023]: p_page_size")
    assert len(result.stderr.strip().splitlines()) == 1
    bad_mode = run_process("feed", "1", "--mode", "sideways", "--dsn", db_dsn)
    assert bad_mode.returncode == 1 and "p_context.mode" in bad_mode.stderr
    bad_cursor = run_process("feed", "1", "--after", "nonsense", "--dsn", db_dsn)
    assert bad_cursor.returncode == 1 and "p_page_after" in bad_cursor.stderr
    bad_user = run_process("feed", "bob", "--dsn", db_dsn)
    assert bad_user.returncode == 2 and "not a user id" in bad_user.stderr


def test_explain(small_world, db_dsn):
    result = json.loads(run("explain", "1", "3", "--dsn", db_dsn, "--json").output)
    assert result["post_id"] == 3 and result["eligible"] is True
    table = run("explain", "1", "3", "--dsn", db_dsn, "--profile", "social")
    assert table.exit_code == 0 and "social_tie" in table.output and "eligible" in table.output
    missing = run_process("explain", "1", "999", "--dsn", db_dsn)
    assert missing.returncode == 1 and "[23503]" in missing.stderr and "999" in missing.stderr


def test_heartbeat_and_maintenance(small_world, db_dsn):
    stale = "UPDATE feed.posts SET trending_score = 0"  # scores the heartbeat must rewrite
    small_world.execute(stale)
    beat = json.loads(run("heartbeat", "--dsn", db_dsn, "--json").output)
    assert beat["rescored"] == 30
    small_world.execute(stale)
    line = run("heartbeat", "--dsn", db_dsn, "--window", "150 minutes")
    assert line.output.startswith("heartbeat: rescored 2 posts")
    small_world.execute(stale)
    chores = json.loads(run("maintenance", "--dsn", db_dsn, "--json").output)
    assert chores["trending_rescored"] == 30 and "impressions_pruned" in chores
    small_world.execute(stale)
    text = run("maintenance", "--dsn", db_dsn)
    assert "trending_rescored=30" in text.output and len(text.output.strip().splitlines()) == 1


def test_settings_roundtrip_and_validation(db, db_dsn):
    assert run("settings", "get", "cooldown", "--dsn", db_dsn).output.strip() == "30 days"
    assert run("settings", "set", "epsilon", "0.2", "--dsn", db_dsn).exit_code == 0
    listed = json.loads(run("settings", "list", "--dsn", db_dsn, "--json").output)
    assert {s["name"]: s["value"] for s in listed}["epsilon"] == "0.2"
    bad = run_process("settings", "set", "epsilon", "lots", "--dsn", db_dsn)
    assert bad.returncode == 1 and "pgfeed: error [22023]: " in bad.stderr
    unknown = run_process("settings", "set", "nope", "1", "--dsn", db_dsn)
    assert unknown.returncode == 1 and "unknown setting" in unknown.stderr
    assert run("settings", "reset", "epsilon", "--dsn", db_dsn).output.strip() == "epsilon = 0.10"


def test_profiles_list_show_set_reset(db, db_dsn):
    names = {p["name"] for p in json.loads(run("profiles", "list", "--dsn", db_dsn, "--json").output)}
    assert names == {"default", "default_plus", "social", "blingram", "hybrid", "relevance"}
    assert json.loads(run("profiles", "show", "social", "--dsn", db_dsn).output)["weights"]["social_tie"] == 0.25
    assert run("profiles", "set", "default", "--weight", "recency=0.5", "--weight", "novelty=0",
               "--dsn", db_dsn).exit_code == 0
    weights = db.execute("SELECT weights FROM feed.ranking_profiles WHERE name = 'default'").fetchone()[0]
    assert weights["recency"] == 0.5 and "novelty" not in weights
    bad = run_process("profiles", "set", "default", "--weight", "charisma=1", "--dsn", db_dsn)
    assert bad.returncode == 1 and "charisma" in bad.stderr
    too_much = run_process("profiles", "set", "mine", "--quota", "trending=0.8", "--quota", "following=0.5",
                           "--dsn", db_dsn)
    assert too_much.returncode == 1 and "more than the page" in too_much.stderr
    assert run("profiles", "reset", "default", "--dsn", db_dsn).exit_code == 0
    weights = db.execute("SELECT weights FROM feed.ranking_profiles WHERE name = 'default'").fetchone()[0]
    assert weights["recency"] == 0.3 and "novelty" in weights


def test_doctor(small_world, db_dsn):
    stale = run_process("doctor", "--dsn", db_dsn, "--json")
    report = json.loads(stale.stdout)
    # staleness is a warning (exit 0); differences from the installed shape fail (tests/test_doctor.py)
    assert stale.returncode == 0 and report["ok"] is True
    assert {c["name"]: c["status"] for c in report["checks"]}["heartbeat"] == "warn"
    small_world.execute("SELECT feed.run_maintenance()")
    healthy = run_process("doctor", "--dsn", db_dsn, "--json")
    report = json.loads(healthy.stdout)
    assert healthy.returncode == 0, report
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["migrations"] == "ok" and statuses["contract functions"] == "ok" and statuses["functions"] == "ok"


def test_commands_refuse_an_unmigrated_database(empty_database):
    _, dsn = empty_database
    result = run_process("feed", "1", "--dsn", dsn)
    assert result.returncode == 4 and "pgfeed migrate" in result.stderr and "Traceback" not in result.stderr
    doctor = run_process("doctor", "--dsn", dsn)
    assert doctor.returncode == 1 and "run pgfeed migrate" in doctor.stdout


@pytest.mark.parametrize("command", [
    ["feed"], ["explain"], ["similar"], ["heartbeat"], ["maintenance"], ["recs", "build"], ["seed"], ["import"],
    ["settings", "set"], ["profiles", "set"], ["doctor"], ["demo"], ["migrate"], ["server", "url"], ["adopt"],
    ["adopt", "posts"], ["adopt", "follows"], ["adopt", "blocks"], ["adopt", "members"], ["adopt", "list"]])
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output
