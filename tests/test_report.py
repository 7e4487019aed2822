"""`pgfeed experiments` and `pgfeed report --html` through click's CliRunner,
on a small seeded world with served feeds and engagement."""

from __future__ import annotations

import json
import re
import sys

import pytest
from click.testing import CliRunner

from pgfeed.cli import cli
from pgfeed.report import PLOTS
from pgfeed.seed import seed_world


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_experiments_commands(db, db_dsn):
    created = run("experiments", "create", "hyb", "--variants",
                  '{"control": {"weight": 50}, "hybrid": {"weight": 50, "profile": "hybrid"}}', "--dsn", db_dsn,
                  "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["status"] == "draft"
    flag = run("experiments", "create", "explore-more", "--rollout", "10", "--settings", '{"epsilon": 0.2}',
               "--start", "--dsn", db_dsn, "--json")
    assert flag.exit_code == 0, flag.output
    assert json.loads(flag.output)["variants"] == {"on": {"weight": 10.0, "settings": {"epsilon": 0.2}},
                                                   "control": {"weight": 90.0}}
    assert run("experiments", "start", "hyb", "--dsn", db_dsn).exit_code == 0
    listed = json.loads(run("experiments", "list", "--dsn", db_dsn, "--json").output)
    assert [(e["name"], e["status"]) for e in listed] == [("explore-more", "running"), ("hyb", "running")]
    assert "hyb" in run("experiments", "list", "--dsn", db_dsn).output
    # an overlapping start is refused with the database's message
    overlap = CliRunner().invoke(cli, ["experiments", "create", "eps2", "--rollout", "50", "--settings",
                                       '{"epsilon": 0.3}', "--start", "--dsn", db_dsn])
    assert overlap.exit_code != 0 and "explore-more" in overlap.output
    assert run("experiments", "stop", "hyb", "--dsn", db_dsn).exit_code == 0
    results = json.loads(run("experiments", "results", "hyb", "--dsn", db_dsn, "--json").output)
    assert [r["variant"] for r in results] == ["control", "hybrid"]
    assert "95% interval" in run("experiments", "results", "hyb", "--dsn", db_dsn).output
    assert run("experiments", "stop", "nope", "--dsn", db_dsn).exit_code != 0


@pytest.fixture
def served_world(db, db_dsn):
    seed_world(db_dsn, seed=3, users=60, posts=400, interactions=1500, days=5)
    db.execute("""INSERT INTO feed.experiments (name, variants, status)
                  VALUES ('exp', '{"control": {"weight": 1}, "hybrid": {"weight": 1, "profile": "hybrid"}}',
                          'running')""")
    for user in range(1, 31):
        rows = db.execute("SELECT post_id, next_cursor FROM feed.get_personalized_feed(%s, 10, NULL, '{}')",
                          [user]).fetchall()
        db.execute("SELECT * FROM feed.get_personalized_feed(%s, 10, %s)", [user, rows[0][1]]).fetchall()
        for post_id, _ in rows[: user % 4]:
            db.execute("SELECT feed.record_interaction(%s, %s, 'like')", [user, post_id])
    # until get_personalized_feed records them itself, sessions get their variants here
    db.execute("UPDATE feed.feed_sessions s SET experiments = jsonb_build_object('exp',"
               " feed.assign_variant(s.user_id, 'exp')) WHERE s.user_id IS NOT NULL")
    return db


def test_html_report_has_every_plot(served_world, db_dsn, tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs the optional extra: pip install 'pgfeed[report]'")
    path = tmp_path / "out" / "report.html"
    result = run("report", "--html", str(path), "--dsn", db_dsn)
    assert result.exit_code == 0, result.output
    assert str(path.resolve()) in result.output
    page = path.read_text()
    assert len(page) > 10000
    for plot in PLOTS:
        section = re.search(rf'<section class="plot" id="{plot}">(.*?)</section>', page, re.S)
        assert section, plot
        if plot == "latency":
            # the test server has no pg_stat_statements: the page says so instead
            assert "data:image/png;base64," in section.group(1) or "pg_stat_statements" in section.group(1)
        else:
            assert re.search(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', section.group(1)), plot
    for missing in ("Nothing was served", "No experiment has run", "served no rows", "nan", "None"):
        assert missing not in re.sub(r'src="data:[^"]*"', "", page), missing
    # offline: nothing is loaded from elsewhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<h3>exp (running)</h3>" in page


def test_report_without_the_extra_says_how_to_get_it(db_dsn, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(cli, ["report", "--html", str(tmp_path / "r.html"), "--dsn", db_dsn])
    assert result.exit_code != 0
    assert "pip install 'pgfeed[report]'" in result.output
    assert not (tmp_path / "r.html").exists()
