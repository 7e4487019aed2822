"""Typed settings (issue 11, contract §6): every setting has a kind and a valid range
in its own row; a value outside it is refused with 22023 naming the setting and
changes nothing, whoever writes it; every value inside it is live and breaks no call."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from psycopg import sql

from .helpers import add_post, fingerprint

# the values issue 11 found breaking later calls
BREAKING = [
    ("session_lifetime", "300000 years"), ("cooldown", "300000 years"), ("rising_window", "300000 years"),
    ("trending_window", "0"), ("inventory_waterline", "2000000000"), ("gravity", "1e308"), ("epsilon", "5"),
    ("epsilon", "NaN"), ("ema_alpha", "Infinity"), ("max_posts_per_author", "0"), ("viewer_claim", ""),
    ("heartbeat_batch_size", "1.5"), ("cooldown", "soon"),
]


def all_settings(db) -> list[tuple[str, str, str | None, str | None]]:
    return db.execute("SELECT name, kind, min_value, max_value FROM feed.settings ORDER BY name").fetchall()


def outside(kind: str, low: str, high: str) -> list[str]:
    """Values just outside [low, high] and values that are not of the kind."""
    if kind == "integer":
        return [str(int(high) + 1), str(int(low) - 1), "1.5", "ten", ""]
    if kind == "number":
        return [str(Decimal(high) * 2 + 1), str(Decimal(low) - 1), "NaN", "Infinity", "-Infinity", "x"]
    if kind == "interval":
        return [f"{high}", f"{low}", "later", ""]  # shifted below, in SQL
    return ["x" * (int(high) + 1)] + ([""] if int(low) > 0 else [])


def refused(db, name: str, value: str) -> None:
    before = fingerprint(db, sequences=True)
    with pytest.raises(psycopg.Error) as excinfo:
        db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
    assert excinfo.value.sqlstate == "22023", (name, value)
    assert name in excinfo.value.diag.message_primary, (name, value)
    assert fingerprint(db, sequences=True) == before


def world(db) -> None:
    for post_id in range(1, 31):
        add_post(db, post_id, 100 + post_id % 5, category=("art", "music", "film")[post_id % 3],
                 age=f"{post_id} hours", duration_ms=30000 if post_id % 2 else None)
    for user_id, post_id, action in [(8, 1, "like"), (8, 2, "like"), (7, 1, "view"), (8, 3, "comment"),
                                     (9, 2, "like"), (9, 1, "like"), (7, 2, "save")]:
        db.execute("SELECT feed.record_interaction(%s, %s, %s)", [user_id, post_id, action])


def exercise(db) -> None:
    """Every kind of call that reads settings: none of them may fail."""
    rows = db.execute("SELECT next_cursor FROM feed.get_personalized_feed(7, 12, NULL, '{}')").fetchall()
    if rows:
        db.execute("SELECT * FROM feed.get_personalized_feed(7, 12, %s, '{}')", [rows[0][0]])
    for mode in ("trending", "chronological", "random"):
        db.execute("SELECT * FROM feed.get_personalized_feed(NULL, 5, NULL, %s)", [f'{{"mode": "{mode}"}}'])
    db.execute("SELECT feed.explain_score(7, 4)")
    db.execute("SELECT feed.record_interaction(7, 5, 'like')")
    db.execute("SELECT feed.record_interaction(7, 5, 'gift', 2.5)")
    db.execute("SELECT feed.record_watch_progress(7, 6, 1000, 30000, true)")
    db.execute("SELECT feed.record_impressions(7, ARRAY[7, 8], 's')")
    db.execute("SELECT feed.run_maintenance()")
    db.execute("SELECT feed.build_recommendations('30 days')")


def test_every_setting_has_a_kind_and_a_range(db):
    rows = all_settings(db)
    assert len(rows) >= 30
    for name, kind, low, high in rows:
        assert kind in ("integer", "number", "interval", "text", "boolean"), name
        if kind != "boolean":
            assert low is not None and high is not None, f"setting {name} has no range"


@pytest.mark.parametrize("name,value", BREAKING, ids=[f"{n}={v}" for n, v in BREAKING])
def test_values_that_broke_later_calls_are_refused(db, name, value):
    refused(db, name, value)


def test_out_of_range_is_refused_for_every_setting(db):
    for name, kind, low, high in all_settings(db):
        if kind == "interval":
            above, below = db.execute("SELECT (%s::interval + interval '1 second')::text,"
                                      " (%s::interval - interval '1 second')::text", [high, low]).fetchone()
            values = [above, below, "later", ""]
        elif kind == "boolean":
            values = ["maybe", ""]
        else:
            values = outside(kind, low, high)
        for value in values:
            refused(db, name, value)


def test_every_value_at_either_end_of_its_range_is_live_and_breaks_nothing(db):
    world(db)
    for name, kind, low, high in all_settings(db):
        if kind == "text":
            continue  # viewer_claim: any claim name; exercised in test_security
        for value in (("false", "true") if kind == "boolean" else (low, high)):
            with db.transaction(force_rollback=True):
                db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
                assert db.execute("SELECT feed._setting(%s)", [name]).fetchone() == (value,)
                exercise(db)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_in_range_value_is_stored_and_read_back(db, data):
    rows = all_settings(db)
    name, kind, low, high = data.draw(st.sampled_from(rows))
    if kind == "integer":
        value = str(data.draw(st.integers(int(low), int(high))))
        typed = db.execute("SELECT %s::integer", [value]).fetchone()[0]
        accessor = "SELECT feed._setting_integer(%s)"
    elif kind == "number":
        number = data.draw(st.floats(float(low), float(high), allow_nan=False, allow_infinity=False))
        value = repr(number)
        typed = float(value)
        accessor = "SELECT feed._setting_number(%s)"
    elif kind == "interval":
        span = db.execute("SELECT extract(epoch FROM %s::interval)::bigint, extract(epoch FROM %s::interval)::bigint",
                          [low, high]).fetchone()
        seconds = data.draw(st.integers(int(span[0]), int(span[1])))
        value = f"{seconds} seconds"
        # extract(epoch) counts a year as 365.25 days, interval comparison as 12 months of
        # 30 days: the top of that span can lie just above the range
        assume(db.execute("SELECT %s::interval <= %s::interval", [value, high]).fetchone()[0])
        typed = db.execute("SELECT %s::interval", [value]).fetchone()[0]
        accessor = "SELECT feed._setting_interval(%s)"
    elif kind == "boolean":
        value = data.draw(st.sampled_from(["true", "false", "on", "off", "yes", "no", "1", "0"]))
        typed = value
        accessor = "SELECT feed._setting(%s)"
    else:
        value = data.draw(st.text(alphabet="abcdefghij_", min_size=int(low), max_size=min(int(high), 30)))
        typed = value
        accessor = "SELECT feed._setting(%s)"
    with db.transaction(force_rollback=True):
        db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [value, name])
        assert db.execute(accessor, [name]).fetchone()[0] == typed


def test_an_admin_role_is_refused_too(db):
    role = f"pgfeed_t_settings_{db.info.backend_pid}"
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE pgfeed_admin").format(sql.Identifier(role)))
    try:
        before = fingerprint(db, sequences=True)
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            with pytest.raises(psycopg.Error) as excinfo, db.transaction():
                db.execute("UPDATE feed.settings SET value = '5' WHERE name = 'epsilon'")
            assert excinfo.value.sqlstate == "22023" and "epsilon" in excinfo.value.diag.message_primary
            db.execute("UPDATE feed.settings SET value = '0.2' WHERE name = 'epsilon'")
            # the range belongs to the install, not to the administrator
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                db.execute("UPDATE feed.settings SET max_value = '5' WHERE name = 'epsilon'")
        assert fingerprint(db, sequences=True) == before
    finally:
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_cli_refuses_out_of_range_values(db, db_dsn):
    before = fingerprint(db, sequences=True)
    result = subprocess.run([sys.executable, "-m", "pgfeed.cli", "settings", "set", "epsilon", "5", "--dsn", db_dsn],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "22023" in result.stderr and "epsilon" in result.stderr
    assert fingerprint(db, sequences=True) == before
    listed = subprocess.run([sys.executable, "-m", "pgfeed.cli", "settings", "list", "--json", "--dsn", db_dsn],
                            capture_output=True, text=True, check=True)
    import json

    epsilon = next(s for s in json.loads(listed.stdout) if s["name"] == "epsilon")
    assert (epsilon["kind"], epsilon["min"], epsilon["max"]) == ("number", "0", "0.5")
