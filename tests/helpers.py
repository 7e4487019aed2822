"""Small helpers shared by the tests: building worlds and fingerprinting state."""

from __future__ import annotations

import math
from datetime import datetime

import psycopg

DEFAULT_WEIGHTS = {"likes": 1.0, "comments": 3.0, "shares": 5.0, "gifts": 50.0, "tips": 50.0, "gravity": 1.8}


def trending(likes, comments, shares, gift, tip, created_at: datetime, now: datetime, weights=DEFAULT_WEIGHTS):
    """The Blingram formula (seed 000 §2), computed by hand in Python."""
    age_hours = max((now - created_at).total_seconds() / 3600.0, 0.0)
    raw = (weights["likes"] * likes + weights["comments"] * comments + weights["shares"] * shares
           + weights["gifts"] * float(gift) + weights["tips"] * float(tip) + 1)
    return raw / math.pow(age_hours + 2, weights["gravity"])


def add_post(db: psycopg.Connection, post_id: int, author_id: int = 1000, *, category: str = "art",
             post_type: str = "image", age: str = "1 hour", **columns) -> None:
    names = ["post_id", "author_id", "category", "post_type", "created_at", *columns]
    values = [post_id, author_id, category, post_type, None, *columns.values()]
    placeholders = ["%s"] * len(names)
    placeholders[4] = "now() - %s::interval"
    values[4] = age
    db.execute(
        f"INSERT INTO feed.posts ({', '.join(names)}) VALUES ({', '.join(placeholders)})", values
    )


def fingerprint(db: psycopg.Connection, sequences: bool = False) -> dict:
    """Every row of every pgfeed table, hashed per table: equal fingerprints, equal
    state. With sequences, also every sequence's position (a refused call draws
    no id); leave them out when comparing across a rolled-back call that
    succeeded, since a sequence never rolls back."""
    tables = [r[0] for r in db.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'feed'::regnamespace AND c.relkind = 'r'"
        " ORDER BY 1").fetchall()]
    result = {}
    for table in tables:
        result[table] = db.execute(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM feed.{table} t"
        ).fetchone()
    if not sequences:
        return result
    names = [r[0] for r in db.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'feed'::regnamespace AND c.relkind = 'S'"
        " ORDER BY 1").fetchall()]
    for sequence in names:
        result[f"sequence {sequence}"] = db.execute(f"SELECT last_value, is_called FROM feed.{sequence}").fetchone()
    return result


def nested_plans(db: psycopg.Connection, sql: str, params) -> str:
    """The plans of every statement run inside sql (auto_explain, sent back as notices)."""
    notices: list[str] = []

    def collect(diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    db.add_notice_handler(collect)
    try:
        db.execute("LOAD 'auto_explain'")
        db.execute("SET auto_explain.log_min_duration = 0")
        db.execute("SET auto_explain.log_nested_statements = on")
        db.execute("SET auto_explain.log_level = notice")
        db.execute("SET client_min_messages = notice")
        db.execute(sql, params).fetchall()
        db.execute("SET auto_explain.log_min_duration = -1")
    finally:
        db.remove_notice_handler(collect)
    return "\n".join(notices)
