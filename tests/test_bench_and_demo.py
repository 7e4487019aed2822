"""The measuring commands and the demo at a tiny scale: shape and sanity, never wall-clock limits."""

from __future__ import annotations

import io
import json
import re
import sys

import psycopg
import pytest
from click.testing import CliRunner
from rich.console import Console

from pgfeed import bench
from pgfeed.cli import cli


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    result = bench.percentiles([float(v) for v in values])
    assert (result["p50"], result["p95"], result["p99"], result["max"]) == (50, 95, 99, 100)
    assert bench.percentiles([]) == {"n": 0}
    assert bench.percentiles([3.0]) == {"n": 1, "p50": 3.0, "p95": 3.0, "p99": 3.0, "mean": 3.0, "max": 3.0}


def test_bench_reports_every_figure_with_sane_values(empty_database, tmp_path):
    _, dsn = empty_database
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--scale", "tiny", "--samples", "20", "--seconds", "1",
                                      "--clients", "2", "--dsn", dsn, "--output", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["scale"] == "tiny" and report["machine"]["cores"] >= 1 and report["postgresql"]
    for name in ("client_round_trip_ms", "floor_ms", "feed_page12_first_ms", "feed_page12_third_ms",
                 "feed_page50_first_ms"):
        figure = report["latency"][name]
        assert figure["n"] > 0, name
        assert 0 < figure["p50"] <= figure["p95"] <= figure["p99"] <= figure["max"], (name, figure)
    assert report["latency"]["ratio_to_floor"]["p50"] > 0
    for name in ("feeds_per_second", "record_interaction_random", "record_interaction_hot_post",
                 "record_interaction_random_async_commit", "record_interaction_hot_post_async_commit"):
        assert report[name]["per_second"] > 0 and report[name]["failed"] == 0, name
    assert report["record_interaction_hot_post"]["clients"] == 16
    assert report["heartbeat"]["seconds"] > 0 and report["heartbeat"]["posts_in_window"] > 0
    worst = report["heartbeat"]["every_post_rewritten"]
    assert worst["rescored"] >= report["heartbeat"]["posts_in_window"] > report["heartbeat"]["rescored"] > 0
    assert report["build_recommendations"]["rows"] > 0
    assert report["similar_posts_ms"]["n"] > 0
    assert report["sizes"]["posts"]["total_mb"] > 0
    assert set(report["targets"]["met"]) >= {"feed_p95_ms<=10", "record_interaction_hot>=1500"}
    for window in bench.PEER_WINDOWS:
        peer = report["peer_ms"][window]
        assert peer["n"] > 0 and 0 < peer["p50"] <= peer["p95"] and peer["pgfeed_speedup_p50"] > 0, peer
    assert "naive peer, 7 days window" in result.output
    assert "personalized / floor" in result.output
    # a second run reuses the seeded world
    again = bench.run(dsn, None, bench.Options(scale="tiny", clients=1, samples=10, seconds=1))
    assert again["build"] == {"reused": True}


def test_demo_runs_end_to_end(empty_database, tmp_path):
    pytest.importorskip("matplotlib", reason="the report needs the optional extra: pip install 'pgfeed[report]'")
    from pgfeed.demo import DEMO_EXPERIMENT, run_demo
    from pgfeed.report import PLOTS

    _, dsn = empty_database
    buffer = io.StringIO()
    report = tmp_path / "demo" / "report.html"
    run_demo(dsn=dsn, data_dir=None, users=80, posts=600, interactions=4000, seed=3, viewer=None,
             out=Console(file=buffer, width=400), report_path=report)
    text = buffer.getvalue()
    for expected in ("page 1 for user", "page 2", "likes post", "page 3, after the like", "Explore further",
                     "pgfeed feed", f"pgfeed experiments results {DEMO_EXPERIMENT}"):
        assert expected in text, expected
    # the demo ends by writing its report and printing where
    assert text.rstrip().endswith(str(report.resolve()))
    page = report.read_text()
    assert len(page) > 10000
    for plot in PLOTS:
        section = re.search(rf'<section class="plot" id="{plot}">(.*?)</section>', page, re.S)
        assert section, plot
        if plot != "latency":   # the test server has no pg_stat_statements
            assert re.search(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', section.group(1)), plot
    for missing in ("Nothing was served", "No experiment has", "served no rows", "nan", "None"):
        assert missing not in re.sub(r'src="data:[^"]*"', "", page), missing
    # the demo's A/B test has viewers, impressions and engagements in both variants
    assert f"<h3>{DEMO_EXPERIMENT} (stopped)</h3>" in page
    with psycopg.connect(dsn) as conn:
        results = conn.execute("SELECT variant, viewers, impressions, engagements FROM feed.experiment_results(%s)",
                               [DEMO_EXPERIMENT]).fetchall()
    assert [r[0] for r in results] == ["control", "hybrid"]
    assert all(viewers > 0 and impressions > 0 and engagements > 0 for _, viewers, impressions, engagements in results)


def test_demo_without_the_plotting_extra_still_succeeds(empty_database, tmp_path, monkeypatch):
    from pgfeed.demo import run_demo

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    _, dsn = empty_database
    buffer = io.StringIO()
    report = tmp_path / "report.html"
    run_demo(dsn=dsn, data_dir=None, users=60, posts=400, interactions=2000, seed=5, viewer=None,
             out=Console(file=buffer, width=400), report_path=report)
    text = buffer.getvalue()
    assert "page 3, after the like" in text
    assert "pip install 'pgfeed[report]'" in text and f"pgfeed report --html {report}" in text
    assert not report.exists()


def test_eval_command_on_a_generic_csv(pg_server, tmp_path):
    """pgfeed eval through the real import path and the real feed, on a small made-up event file."""
    path = tmp_path / "events.csv"
    lines = ["user,item,weight,timestamp"]
    for user in range(1, 41):
        group = user % 2  # two tastes: even users like items 1..15, odd users 16..30
        for n in range(10):
            item = 1 + group * 15 + (user * 7 + n * 3) % 15
            lines.append(f"{user},{item},1,{1_600_000_000 + user * 100 + n}")
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["eval", "--dataset", "csv", str(path), "--k", "5", "--dsn", pg_server.dsn(),
                                      "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["results"]) == {"pgfeed (relevance)", "itemknn", "popular", "random"}
    for name, metrics in report["results"].items():
        assert metrics["users"] > 0, name
        assert all(0 <= metrics[m] <= 1 for m in ("precision", "recall", "ndcg")), (name, metrics)
    # two clean taste groups: collaborative filtering beats random
    assert report["results"]["pgfeed (relevance)"]["precision"] > report["results"]["random"]["precision"]
    assert report["load"]["import"]["interactions"]


def test_eval_rejects_a_csv_without_the_columns(pg_server, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("who,what\n1,2\n")
    result = CliRunner().invoke(cli, ["eval", "--dataset", "csv", str(path), "--dsn", pg_server.dsn()])
    assert result.exit_code == 1 and "header lacks" in result.output
