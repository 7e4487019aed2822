"""`pgfeed report --html FILE`: one self-contained HTML page about the feed,
viewable offline (plots are inline PNG images): source mix over time,
engagement rate per source and per experiment variant with 95% intervals,
repeat share and distinct authors per page, and feed latency when
pg_stat_statements is available.

Every number comes from SQL (feed.feed_metrics, feed.experiment_results,
feed._page_metrics, pg_stat_statements); this module only draws. Plotting
needs the optional extra: pip install 'pgfeed[report]'."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import click

from .cli_options import connect, dsn_options

EXTRA_HINT = "the report draws with matplotlib, an optional extra: pip install 'pgfeed[report]'"
Z95 = 1.959963984540054

# the plots every report has, in order (tests check them by id)
PLOTS = ("source-mix", "engagement-by-source", "engagement-by-variant", "page-shape", "latency")


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval, as feed._wilson computes it."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    z2 = Z95 * Z95
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, center - half), min(1.0, center + half)


@dataclass
class ReportData:
    since: str
    generated_at: dt.datetime
    database: str
    metrics: list[dict] = field(default_factory=list)
    pages: list[dict] = field(default_factory=list)
    experiments: list[dict] = field(default_factory=list)   # each with its "results"
    latency: list[dict] | None = None                       # None: pg_stat_statements unavailable
    latency_reason: str = ""


def collect(conn, since: str = "30 days") -> ReportData:
    """Everything the page shows, read with the owner's (or an admin's) rights."""
    data = ReportData(since=since, generated_at=dt.datetime.now(dt.timezone.utc),
                      database=conn.execute("SELECT current_database()").fetchone()[0])
    cols = ("day", "source", "impressions", "engagements", "engagement_rate", "repeat_share", "distinct_posts",
            "distinct_authors")
    data.metrics = [dict(zip(cols, r)) for r in conn.execute(
        "SELECT * FROM feed.feed_metrics(%s::interval)", [since]).fetchall()]
    cols = ("day", "pages", "mean_items", "mean_repeat_share", "mean_distinct_authors")
    data.pages = [dict(zip(cols, r)) for r in conn.execute(
        "SELECT * FROM feed._page_metrics(%s::interval)", [since]).fetchall()]
    cols = ("variant", "viewers", "impressions", "engagements", "engagement_rate", "ci_low", "ci_high")
    for name, status, started_at, stopped_at in conn.execute(
            "SELECT name, status, started_at, stopped_at FROM feed.experiments WHERE status <> 'draft'"
            " ORDER BY status <> 'running', name").fetchall():
        results = [dict(zip(cols, r)) for r in conn.execute(
            "SELECT * FROM feed.experiment_results(%s)", [name]).fetchall()]
        data.experiments.append({"name": name, "status": status, "started_at": started_at,
                                 "stopped_at": stopped_at, "results": results})
    data.latency, data.latency_reason = _latency(conn)
    return data


def _latency(conn) -> tuple[list[dict] | None, str]:
    installed = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension"
                             " WHERE extname = 'pg_stat_statements'").fetchone()
    if installed is None:
        return None, ("pg_stat_statements is not installed in this database, so feed latency is not shown. "
                      "To see it: add pg_stat_statements to shared_preload_libraries, restart, and run "
                      "CREATE EXTENSION pg_stat_statements.")
    import psycopg

    try:
        with conn.transaction():
            rows = conn.execute(
                f"SELECT substring(query from 'feed\\.([a-z_]+)\\(') AS function, sum(calls)::bigint,"
                f"       sum(total_exec_time) / nullif(sum(calls), 0), max(max_exec_time)"
                f" FROM {installed[0]}.pg_stat_statements"
                f" WHERE query ~ 'feed\\.(get_personalized_feed|explain_score|similar_posts|record_[a-z_]+)\\('"
                f" GROUP BY 1 ORDER BY 1").fetchall()
    except psycopg.Error as exc:
        return None, f"pg_stat_statements is installed but cannot be read here ({exc.diag.message_primary})."
    if not rows:
        return None, "pg_stat_statements has recorded no pgfeed call yet (its statistics were reset or are new)."
    return [dict(zip(("function", "calls", "mean_ms", "max_ms"), r)) for r in rows], ""


# ---------------------------------------------------------------------------
# drawing

def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise click.ClickException(EXTRA_HINT) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(plot_id: str, title: str, png: str | None, caption: str, note: str | None = None) -> str:
    body = (f'<img alt="{html.escape(title)}" src="data:image/png;base64,{png}">' if png
            else f'<p class="unavailable">{html.escape(note or "")}</p>')
    return (f'<section class="plot" id="{plot_id}"><h2>{html.escape(title)}</h2>{body}'
            f'<p class="caption">{html.escape(caption)}</p></section>')


def _empty_note(what: str) -> str:
    return (f"Nothing was served in this period, so there is no {what} to draw yet: "
            "serve feeds (or widen --since) and write the report again.")


def render(data: ReportData) -> str:
    plt = _pyplot()
    sections = []
    days = sorted({m["day"] for m in data.metrics})
    sources = sorted({m["source"] for m in data.metrics})

    # source mix over time
    if data.metrics:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        bottom = [0.0] * len(days)
        totals = {d: sum(m["impressions"] for m in data.metrics if m["day"] == d) for d in days}
        for source in sources:
            shares = [sum(m["impressions"] for m in data.metrics if m["day"] == d and m["source"] == source)
                      / totals[d] for d in days]
            ax.bar([str(d) for d in days], shares, bottom=bottom, label=source)
            bottom = [b + s for b, s in zip(bottom, shares)]
        ax.set_ylabel("share of impressions")
        ax.set_ylim(0, 1)
        ax.legend(loc="center left", bbox_to_anchor=(1, 0.5), fontsize="small")
        ax.tick_params(axis="x", labelrotation=45)
        sections.append(_figure("source-mix", "Source mix over time", _png(fig),
                                "Share of served rows per source, per UTC day (feed.feed_metrics)."))
    else:
        sections.append(_figure("source-mix", "Source mix over time", None, "", _empty_note("source mix")))

    # engagement rate per source with 95% intervals
    if data.metrics:
        per_source = []
        for source in sources:
            n = sum(m["impressions"] for m in data.metrics if m["source"] == source)
            k = sum(m["engagements"] for m in data.metrics if m["source"] == source)
            per_source.append((source, k, n))
        fig, ax = plt.subplots(figsize=(8, 3.4))
        _rate_plot(ax, [(s, k, n) for s, k, n in per_source])
        sections.append(_figure("engagement-by-source", "Engagement rate per source", _png(fig),
                                "Engaged served rows / served rows, with 95% Wilson intervals, over the whole "
                                "period. An engagement is a positive interaction with the served post by the same "
                                "viewer within the attribution window."))
    else:
        sections.append(_figure("engagement-by-source", "Engagement rate per source", None, "",
                                _empty_note("engagement")))

    # engagement rate per variant with 95% intervals
    with_data = [e for e in data.experiments if any(r["impressions"] for r in e["results"])]
    if with_data:
        fig, axes = plt.subplots(len(with_data), 1, figsize=(8, 2.6 * len(with_data)), squeeze=False)
        for ax, experiment in zip(axes[:, 0], with_data):
            _rate_plot(ax, [(r["variant"], r["engagements"], r["impressions"]) for r in experiment["results"]])
            ax.set_title(f"{experiment['name']} ({experiment['status']})", fontsize="medium")
        fig.tight_layout()
        sections.append(_figure("engagement-by-variant", "Engagement rate per experiment variant", _png(fig),
                                "Per variant of each started experiment (feed.experiment_results): rate and 95% "
                                "Wilson interval. Intervals that do not overlap are a credible difference."))
    else:
        note = ("No experiment has run yet (pgfeed experiments create --help)." if not data.experiments
                else "The experiments have served no rows yet.")
        sections.append(_figure("engagement-by-variant", "Engagement rate per experiment variant", None, "", note))

    # repeat share and distinct authors per page
    if data.pages:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
        labels = [str(p["day"]) for p in data.pages]
        left.plot(labels, [p["mean_repeat_share"] for p in data.pages], marker="o")
        left.set_title("repeat share per page", fontsize="medium")
        left.set_ylim(0, max(0.05, max(p["mean_repeat_share"] for p in data.pages) * 1.2))
        right.plot(labels, [p["mean_distinct_authors"] for p in data.pages], marker="o", color="tab:green",
                   label="distinct authors")
        right.plot(labels, [p["mean_items"] for p in data.pages], linestyle="--", color="grey", label="rows")
        right.set_title("distinct authors per page", fontsize="medium")
        right.set_ylim(0, None)
        right.legend(fontsize="small")
        for ax in (left, right):
            ax.tick_params(axis="x", labelrotation=45)
        sections.append(_figure("page-shape", "Repeat share and distinct authors per page", _png(fig),
                                "Means over the pages served each UTC day: the share of controlled repeats on a "
                                "page, and how many different authors it shows (dashed: rows per page)."))
    else:
        sections.append(_figure("page-shape", "Repeat share and distinct authors per page", None, "",
                                _empty_note("page")))

    # feed latency
    if data.latency:
        fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(data.latency)))
        names = [f"{r['function']} ({r['calls']} calls)" for r in data.latency]
        ax.barh(names, [r["mean_ms"] for r in data.latency], label="mean")
        ax.scatter([r["max_ms"] for r in data.latency], names, color="tab:red", marker="|", s=200, label="max")
        ax.set_xlabel("ms per call")
        ax.legend(fontsize="small")
        sections.append(_figure("latency", "Feed latency", _png(fig),
                                "Mean and maximum execution time per pgfeed function, from pg_stat_statements "
                                "since its statistics were last reset."))
    else:
        sections.append(_figure("latency", "Feed latency", None, "", data.latency_reason))

    return _page(data, sections)


def _rate_plot(ax, rows: list[tuple[str, int, int]]) -> None:
    names, rates, lows, highs = [], [], [], []
    for name, k, n in rows:
        low, high = wilson(k, n)
        names.append(f"{name}\n(n={n})")
        rate = k / n if n else math.nan
        rates.append(rate)
        # clamped: float rounding can leave the interval a hair inside the rate
        lows.append(max(rate - low, 0.0) if n else 0)
        highs.append(max(high - rate, 0.0) if n else 0)
    positions = list(range(len(names)))
    ax.errorbar(positions, rates, yerr=[lows, highs], fmt="o", capsize=6)
    ax.set_xticks(positions, names, fontsize="small")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("engagement rate")
    ax.set_ylim(0, None)
    ax.grid(axis="y", alpha=0.3)


def _table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _page(data: ReportData, sections: list[str]) -> str:
    impressions = sum(m["impressions"] for m in data.metrics)
    engagements = sum(m["engagements"] for m in data.metrics)
    summary = _table(["period", "impressions", "engagements", "engagement rate", "pages"],
                     [[f"since now() - {data.since} (whole UTC days)", impressions, engagements,
                       _pct(engagements / impressions if impressions else None),
                       sum(p["pages"] for p in data.pages)]])
    experiments = "".join(
        f"<h3>{html.escape(e['name'])} ({html.escape(e['status'])})</h3>"
        + _table(["variant", "viewers", "impressions", "engagements", "rate", "95% interval"],
                 [[r["variant"], r["viewers"], r["impressions"], r["engagements"], _pct(r["engagement_rate"]),
                   "-" if r["ci_low"] is None else f"{_pct(r['ci_low'])} – {_pct(r['ci_high'])}"]
                  for r in e["results"]])
        for e in data.experiments)
    style = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: .2rem; }
section.plot { margin: 2rem 0; } section.plot img { max-width: 100%; }
.caption { color: #555; font-size: .9rem; } .unavailable { background: #f6f6f6; padding: .8rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; } td, th { border: 1px solid #ddd; padding: .25rem .6rem; }
th { background: #f3f3f3; text-align: left; } td { text-align: right; } td:first-child { text-align: left; }
"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pgfeed report: {html.escape(data.database)}</title>
<style>{style}</style></head>
<body>
<h1>pgfeed report</h1>
<p class="meta">database {html.escape(data.database)} · generated {data.generated_at:%Y-%m-%d %H:%M} UTC ·
self-contained, works offline</p>
{summary}
{''.join(sections)}
<h2>Experiments</h2>
{experiments or '<p>No experiment has been started.</p>'}
<p class="caption">docs/experiments.md explains what is attributed and how to read an interval.</p>
</body></html>
"""


def write_report(conn, path: Path, since: str = "30 days") -> Path:
    _pyplot()   # fail early, before any query, when the extra is missing
    page = render(collect(conn, since))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


@click.command()
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Write the page here (one self-contained file).")
@click.option("--since", default="30 days", show_default=True, help="Cover whole UTC days back to now() - SINCE.")
@dsn_options
def report(html_path, since, dsn, data_dir):
    """Write an HTML report with plots: source mix, engagement per source and
    variant with intervals, page shape, latency.

    Needs the optional extra: pip install 'pgfeed[report]'.

    \b
    Example:
        pgfeed report --html feed-report.html --since '14 days'
    """
    _pyplot()
    with connect(dsn, data_dir) as conn:
        path = write_report(conn, html_path, since)
    click.echo(f"report: {path.resolve()}")
