"""The privilege matrix of docs/security.md, as data: each role against each
public function and each table. tests/test_security.py checks every cell against
a real database (allowed, or SQLSTATE 42501) and that docs/security.md shows
exactly this table."""

from __future__ import annotations

ROLES = ("pgfeed_app", "pgfeed_viewer", "pgfeed_admin")

# What a cell says: "yes" (allowed), "own" (allowed only as feed.current_viewer(),
# else 42501), "no" (42501), or for tables, the privileges allowed.
FUNCTIONS: dict[str, dict[str, str]] = {
    "get_personalized_feed": {"pgfeed_app": "yes", "pgfeed_viewer": "own", "pgfeed_admin": "yes"},
    "explain_score": {"pgfeed_app": "yes", "pgfeed_viewer": "own", "pgfeed_admin": "yes"},
    "similar_posts": {"pgfeed_app": "yes", "pgfeed_viewer": "yes", "pgfeed_admin": "yes"},
    "record_interaction": {"pgfeed_app": "yes", "pgfeed_viewer": "own", "pgfeed_admin": "yes"},
    "record_impression": {"pgfeed_app": "yes", "pgfeed_viewer": "own", "pgfeed_admin": "yes"},
    "record_impressions": {"pgfeed_app": "yes", "pgfeed_viewer": "own", "pgfeed_admin": "yes"},
    "record_watch_progress": {"pgfeed_app": "yes", "pgfeed_viewer": "own", "pgfeed_admin": "yes"},
    "current_viewer": {"pgfeed_app": "yes", "pgfeed_viewer": "yes", "pgfeed_admin": "yes"},
    "trending_score": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "refresh_trending_scores": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "build_recommendations": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "run_maintenance": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "rebuild_counters": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "assign_variant": {"pgfeed_app": "yes", "pgfeed_viewer": "yes", "pgfeed_admin": "yes"},
    "experiment_results": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "feed_metrics": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "adopt_sql": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "adopted_tables": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "yes"},
    "any private function (`feed._*`)": {"pgfeed_app": "no", "pgfeed_viewer": "no", "pgfeed_admin": "no"},
}

HOST_TABLES = ("follows", "collective_members", "blocks", "user_preferences", "user_identities")
ALL = "SELECT, INSERT, UPDATE, DELETE"

# table -> role -> privileges allowed ("" = none); feed.posts' engine columns
# (like_count … trending_score) are never writable by a role.
TABLES: dict[str, dict[str, str]] = {
    "posts": {"pgfeed_app": "SELECT, INSERT*, UPDATE*, DELETE", "pgfeed_viewer": "",
              "pgfeed_admin": "SELECT, INSERT*, UPDATE*, DELETE"},
    **{t: {"pgfeed_app": ALL, "pgfeed_viewer": "", "pgfeed_admin": ALL} for t in HOST_TABLES},
    "interactions": {"pgfeed_app": "", "pgfeed_viewer": "SELECT (own rows)", "pgfeed_admin": ""},
    "impressions": {"pgfeed_app": "", "pgfeed_viewer": "SELECT (own rows)", "pgfeed_admin": ""},
    "settings": {"pgfeed_app": "", "pgfeed_viewer": "", "pgfeed_admin": "SELECT, UPDATE (value)"},
    "ranking_profiles": {"pgfeed_app": "", "pgfeed_viewer": "", "pgfeed_admin": ALL},
    "experiments": {"pgfeed_app": "", "pgfeed_viewer": "", "pgfeed_admin": ALL},
    "every other table (engine state, sessions, install_state)": {
        "pgfeed_app": "", "pgfeed_viewer": "", "pgfeed_admin": ""},
}

POSTS_ENGINE_COLUMNS = ("like_count", "comment_count", "share_count", "view_count", "gift_amount", "tip_amount",
                        "trending_score", "praise_count", "trophy_count", "save_count", "report_count",
                        "watch_count", "watch_ratio_sum")
POSTS_HOST_COLUMNS = ("post_id", "author_id", "created_at", "category", "post_type", "collective_id", "visibility",
                      "is_deleted", "media_ready", "duration_ms", "embedding", "tags")


def markdown() -> str:
    """The two tables as they appear in docs/security.md."""
    lines = ["| function | " + " | ".join(f"`{r}`" for r in ROLES) + " |",
             "|---|" + "---|" * len(ROLES)]
    for name, cells in FUNCTIONS.items():
        label = name if name.startswith("any") else f"`feed.{name}`"
        lines.append(f"| {label} | " + " | ".join(cells[r] for r in ROLES) + " |")
    lines += ["", "| table | " + " | ".join(f"`{r}`" for r in ROLES) + " |",
              "|---|" + "---|" * len(ROLES)]
    for name, cells in TABLES.items():
        label = name if name.startswith("every") else f"`feed.{name}`"
        lines.append(f"| {label} | " + " | ".join(cells[r] or "none" for r in ROLES) + " |")
    return "\n".join(lines) + "\n"
