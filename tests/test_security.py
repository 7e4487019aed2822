"""Security (docs/security.md): no search_path hijacking, the three roles and
their exact privileges, viewer identity the way PostgREST and poolers set it,
row-level security, and the cursor secret."""

from __future__ import annotations

import contextlib
import random
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgfeed import install

from . import privilege_matrix as matrix
from .helpers import add_post, fingerprint

REPO = Path(__file__).resolve().parent.parent
MODES = ("personalized", "trending", "chronological", "random")

# Test roles: cluster-wide, created once, granted the pgfeed roles.
TEST_ROLES = {
    "pgfeed_t_app": ["pgfeed_app"],
    "pgfeed_t_viewer": ["pgfeed_viewer"],
    "pgfeed_t_admin": ["pgfeed_admin"],
    "pgfeed_t_viewer_app": ["pgfeed_viewer", "pgfeed_app"],
    "pgfeed_t_nobody": [],
}


@pytest.fixture
def roles(db):
    for role, groups in TEST_ROLES.items():
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        for group in groups:
            db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    return TEST_ROLES


@contextlib.contextmanager
def acting(dsn: str, role: str, *, viewer: str | None = None, claims: str | None = None,
           session_authorization: bool = False):
    """A transaction the way PostgREST or a pooler runs one: SET LOCAL ROLE (or a
    session that logged in as the role), the identity settings, then the calls.
    Rolled back at the end."""
    with psycopg.connect(dsn) as conn:
        if session_authorization:
            conn.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier(role)))
        else:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        if viewer is not None:
            conn.execute("SELECT set_config('pgfeed.viewer_id', %s, true)", [viewer])
        if claims is not None:
            conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [claims])
        try:
            yield conn
        finally:
            conn.rollback()


def sqlstate_of(conn, statement: str, params=()) -> str | None:
    """None when the statement runs, else its SQLSTATE (inside a savepoint)."""
    try:
        with conn.transaction():
            cursor = conn.execute(statement, params)
            if cursor.description is not None:
                cursor.fetchall()
        return None
    except psycopg.Error as exc:
        return exc.sqlstate


def small_world(db) -> None:
    """Posts 1..12 by authors 100..103, viewers 7 and 8, a little engagement."""
    for post_id in range(1, 13):
        add_post(db, post_id, 100 + post_id % 4, category=("art", "music", "film")[post_id % 3],
                 post_type=("image", "video")[post_id % 2], age=f"{post_id} hours",
                 duration_ms=30000 if post_id % 2 else None)
    rng = random.Random(5)
    for post_id in range(1, 13):
        vector = "[" + ",".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(384)) + "]"
        db.execute("UPDATE feed.posts SET embedding = %s::text::public.vector WHERE post_id = %s", [vector, post_id])
    db.execute("INSERT INTO feed.follows (follower_id, followee_id) VALUES (7, 100), (7, 101), (8, 102)")
    for user_id, post_id, action in [(8, 1, "like"), (8, 2, "like"), (7, 1, "view"), (8, 3, "comment")]:
        db.execute("SELECT feed.record_interaction(%s, %s, %s)", [user_id, post_id, action])
    db.execute("""INSERT INTO feed.experiments (name, variants) VALUES ('exp', '{"a": {"weight": 1}, "b": {"weight": 1}}')""")
    db.execute("CREATE TABLE public.adopt_probe (a bigint, b bigint)")  # a host table, for feed.adopt_sql


# ---------------------------------------------------------------------------
# the privilege matrix

FUNCTION_CALLS = {
    # name -> (statement for a given user id; takes {user})
    "get_personalized_feed": "SELECT * FROM feed.get_personalized_feed({user}, 5, NULL, '{{}}')",
    "explain_score": "SELECT feed.explain_score({user}, 1)",
    "similar_posts": "SELECT * FROM feed.similar_posts(1, 5)",
    "record_interaction": "SELECT feed.record_interaction({user}, 2, 'like')",
    "record_impression": "SELECT feed.record_impression({user}, 2)",
    "record_impressions": "SELECT feed.record_impressions({user}, ARRAY[2, 3]::bigint[])",
    "record_watch_progress": "SELECT feed.record_watch_progress({user}, 3, 1000, 30000)",
    "current_viewer": "SELECT feed.current_viewer()",
    "trending_score": "SELECT feed.trending_score(1, 2, 3, 4, 5, now() - interval '1 hour')",
    "refresh_trending_scores": "SELECT feed.refresh_trending_scores('1 day')",
    "build_recommendations": "SELECT feed.build_recommendations('30 days')",
    "run_maintenance": "SELECT feed.run_maintenance()",
    "rebuild_counters": "SELECT feed.rebuild_counters()",
    "assign_variant": "SELECT feed.assign_variant({user}, 'exp')",
    "experiment_results": "SELECT * FROM feed.experiment_results('exp')",
    "feed_metrics": "SELECT * FROM feed.feed_metrics('1 day')",
    "adopt_sql": "SELECT feed.adopt_sql('follows', 'public.adopt_probe', '{{\"follower\": \"a\", \"followee\": \"b\"}}')",
    "adopted_tables": "SELECT * FROM feed.adopted_tables()",
    "any private function (`feed._*`)": "SELECT feed._setting('cooldown')",
}


def test_matrix_names_every_public_function(db):
    public = {r[0] for r in db.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'feed'::regnamespace"
        " AND p.proname NOT LIKE '\\_%' AND p.prokind = 'f'").fetchall()}
    assert public == {name for name in matrix.FUNCTIONS if not name.startswith("any")}
    assert set(FUNCTION_CALLS) == set(matrix.FUNCTIONS)


@pytest.mark.parametrize("role", matrix.ROLES)
def test_function_privileges_follow_the_matrix(db, db_dsn, roles, role):
    small_world(db)
    member = {"pgfeed_app": "pgfeed_t_app", "pgfeed_viewer": "pgfeed_t_viewer", "pgfeed_admin": "pgfeed_t_admin"}[role]
    for name, statement in FUNCTION_CALLS.items():
        cell = matrix.FUNCTIONS[name][role]
        with acting(db_dsn, member, viewer="7") as conn:
            as_self = sqlstate_of(conn, statement.format(user=7))
            as_other = sqlstate_of(conn, statement.format(user=8))
        if cell == "yes":
            assert (as_self, as_other) == (None, None), name
        elif cell == "own":
            assert (as_self, as_other) == (None, "42501"), name
        else:
            assert (as_self, as_other) == ("42501", "42501"), name


def _first_plain_column(db, table: str) -> str:
    return db.execute(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1",
        [f"feed.{table}"]).fetchone()[0]


def _expected_table(table: str, role: str, privilege: str, column: str) -> bool:
    cell = matrix.TABLES.get(table, matrix.TABLES["every other table (engine state, sessions, install_state)"])[role]
    if table == "posts" and privilege in ("INSERT", "UPDATE"):
        return role != "pgfeed_viewer" and column in matrix.POSTS_HOST_COLUMNS
    if table == "settings" and privilege == "UPDATE":
        return role == "pgfeed_admin" and column == "value"
    return privilege in re.findall(r"[A-Z]+", cell)


@pytest.mark.parametrize("role", matrix.ROLES)
def test_table_privileges_follow_the_matrix(db, db_dsn, roles, role):
    member = {"pgfeed_app": "pgfeed_t_app", "pgfeed_viewer": "pgfeed_t_viewer", "pgfeed_admin": "pgfeed_t_admin"}[role]
    tables = [r[0] for r in db.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'feed'::regnamespace AND c.relkind = 'r'"
        " ORDER BY 1").fetchall()]
    checked = 0
    for table in tables:
        columns = ([*matrix.POSTS_HOST_COLUMNS, *matrix.POSTS_ENGINE_COLUMNS] if table == "posts"
                   else ["name", "value"] if table == "settings" else [_first_plain_column(db, table)])
        target = sql.Identifier("feed", table)
        with acting(db_dsn, member, viewer="7") as conn:
            for column in columns:
                col = sql.Identifier(column)
                attempts = {
                    "SELECT": sql.SQL("SELECT 1 FROM {} LIMIT 0").format(target),
                    "INSERT": sql.SQL("INSERT INTO {} ({}) SELECT NULL WHERE false").format(target, col),
                    "UPDATE": sql.SQL("UPDATE {} SET {} = NULL WHERE false").format(target, col),
                    "DELETE": sql.SQL("DELETE FROM {} WHERE false").format(target),
                }
                for privilege, statement in attempts.items():
                    state = sqlstate_of(conn, statement.as_string(conn))
                    expected = _expected_table(table, role, privilege, column)
                    assert state == (None if expected else "42501"), (table, column, privilege, state)
                    checked += 1
    assert checked > 100


def test_docs_show_the_matrix():
    text = (REPO / "docs" / "security.md").read_text()
    assert matrix.markdown() in text, "docs/security.md must contain tests/privilege_matrix.py's tables verbatim"


def test_execute_is_granted_to_no_one_else(db):
    """No function of schema feed is executable by PUBLIC, and every public
    function is SECURITY DEFINER with a pinned search_path."""
    rows = db.execute(
        "SELECT p.oid::regprocedure::text, p.proname, p.prosecdef, p.proconfig,"
        "       has_function_privilege('public', p.oid, 'EXECUTE')"
        " FROM pg_proc p WHERE p.pronamespace = 'feed'::regnamespace").fetchall()
    assert rows
    for signature, name, secdef, config, public_execute in rows:
        assert not public_execute, signature
        if not name.startswith("_"):
            assert secdef, f"{signature} must be SECURITY DEFINER"
        if secdef:
            assert "search_path=pg_catalog, pg_temp" in (config or []), signature


# ---------------------------------------------------------------------------
# identity, the way PostgREST and poolers run it

def test_postgrest_transaction_acts_as_the_jwt_subject(db, db_dsn, roles):
    small_world(db)
    before = fingerprint(db)
    with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": "7", "role": "authenticated"}') as conn:
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] == 7
        page = conn.execute("SELECT post_id FROM feed.get_personalized_feed(7, 5, NULL)").fetchall()
        assert page
        assert conn.execute("SELECT feed.record_interaction(7, 2, 'like')").fetchone()[0] > 0
    with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": "7"}') as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="p_user_id"):
            conn.execute("SELECT feed.record_interaction(8, 2, 'like')")
    assert fingerprint(db) == before, "a spoofed call (and the rolled-back ones) wrote nothing"


def test_spoofing_raises_for_every_per_user_function(db, db_dsn, roles):
    small_world(db)
    before = fingerprint(db)
    for name, statement in FUNCTION_CALLS.items():
        if matrix.FUNCTIONS[name]["pgfeed_viewer"] != "own":
            continue
        with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": 7}') as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
                conn.execute(statement.format(user=8))
            assert "p_user_id" in str(caught.value)
    assert fingerprint(db) == before


def test_uuid_subjects_map_through_user_identities(db, db_dsn, roles):
    small_world(db)
    subject = "3f0c2a4e-8f0e-4d7b-9a63-0d3a1c2b9e11"
    db.execute("INSERT INTO feed.user_identities (subject, user_id) VALUES (%s, 7)", [subject])
    claims = '{"sub": "%s"}' % subject
    with acting(db_dsn, "pgfeed_t_viewer", claims=claims) as conn:
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] == 7
        assert conn.execute("SELECT count(*) FROM feed.get_personalized_feed(7, 3, NULL)").fetchone()[0] == 3
    with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": "unknown-subject"}') as conn:
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] is None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM feed.get_personalized_feed(7, 3, NULL)")
    with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": "unknown-subject"}') as conn:
        # anonymous feeds stay open
        assert conn.execute("SELECT count(*) FROM feed.get_personalized_feed(NULL, 3, NULL)").fetchone()[0] == 3


def test_viewer_claim_setting_names_the_claim(db, db_dsn, roles):
    small_world(db)
    db.execute("UPDATE feed.settings SET value = 'user_id' WHERE name = 'viewer_claim'")
    with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": "8", "user_id": 7}') as conn:
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] == 7


def test_pooler_path_with_set_local_viewer_id(db, db_dsn, roles):
    small_world(db)
    with acting(db_dsn, "pgfeed_t_viewer", viewer="8", claims='{"sub": "7"}') as conn:
        # pgfeed.viewer_id wins over the JWT claim
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] == 8
        conn.execute("SELECT feed.record_impression(8, 1)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT feed.record_impression(7, 1)")
    with acting(db_dsn, "pgfeed_t_viewer", viewer="not-a-number") as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="pgfeed.viewer_id"):
            conn.execute("SELECT feed.current_viewer()")


def test_empty_viewer_id_after_set_local_counts_as_unset(db_dsn, db, roles):
    small_world(db)
    with psycopg.connect(db_dsn) as conn:
        conn.execute("SET LOCAL ROLE pgfeed_t_viewer")
        conn.execute("SET LOCAL pgfeed.viewer_id = '7'")
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] == 7
        conn.commit()
        # the transaction is over: the placeholder setting now reads as ''
        assert conn.execute("SELECT current_setting('pgfeed.viewer_id', true)").fetchone()[0] == ""
        conn.execute("SET LOCAL ROLE pgfeed_t_viewer")
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] is None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT feed.record_interaction(7, 1, 'like')")
        conn.rollback()


def test_login_role_without_set_role_is_restricted_too(db, db_dsn, roles):
    small_world(db)
    with acting(db_dsn, "pgfeed_t_viewer", viewer="7", session_authorization=True) as conn:
        assert conn.execute("SELECT current_setting('role')").fetchone()[0] == "none"
        conn.execute("SELECT * FROM feed.get_personalized_feed(7, 3, NULL)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM feed.get_personalized_feed(8, 3, NULL)")


def test_app_and_superuser_act_for_anyone(db, db_dsn, roles):
    small_world(db)
    with acting(db_dsn, "pgfeed_t_viewer_app", viewer="7") as conn:
        # a member of pgfeed_app is not restricted, even if also a viewer
        conn.execute("SELECT feed.record_interaction(8, 4, 'like')")
        conn.execute("SELECT feed.explain_score(8, 4)")
    db.execute("SET pgfeed.viewer_id = '7'")
    db.execute("SELECT feed.record_interaction(8, 5, 'like')")
    db.execute("RESET pgfeed.viewer_id")


def test_explain_score_of_another_viewer_is_private(db, db_dsn, roles):
    small_world(db)
    db.execute("SELECT feed.record_interaction(8, 6, 'report')")
    with acting(db_dsn, "pgfeed_t_viewer", viewer="7") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SELECT feed.explain_score(8, 6)")
        assert conn.execute("SELECT feed.explain_score(7, 6) -> 'excluded_because'").fetchone()[0] == []


def test_row_level_security_shows_a_viewer_its_own_rows(db, db_dsn, roles):
    small_world(db)
    db.execute("SELECT feed.record_impressions(7, ARRAY[4, 5]::bigint[])")
    db.execute("SELECT feed.record_impressions(8, ARRAY[4, 6]::bigint[])")
    with acting(db_dsn, "pgfeed_t_viewer", viewer="7") as conn:
        users = {r[0] for r in conn.execute("SELECT user_id FROM feed.interactions").fetchall()}
        assert users == {7}
        assert {r[0] for r in conn.execute("SELECT user_id FROM feed.impressions").fetchall()} == {7}
    with acting(db_dsn, "pgfeed_t_viewer", claims='{"sub": "8"}') as conn:
        assert {r[0] for r in conn.execute("SELECT user_id FROM feed.interactions").fetchall()} == {8}
    with acting(db_dsn, "pgfeed_t_viewer") as conn:
        assert conn.execute("SELECT count(*) FROM feed.interactions").fetchone()[0] == 0


def test_only_the_owner_reads_the_cursor_secret(db, db_dsn, roles):
    for role in ("pgfeed_t_app", "pgfeed_t_viewer", "pgfeed_t_admin", "pgfeed_t_nobody"):
        with acting(db_dsn, role, viewer="7") as conn:
            assert sqlstate_of(conn, "SELECT value FROM feed.install_state") == "42501", role
            # and no function hands it out: cursors are still signed and checked
            assert sqlstate_of(conn, "SELECT feed._cursor_mac('x'::bytea)") == "42501", role


def test_app_inserts_posts_without_reading_engine_tables(db, db_dsn, roles):
    """The triggers on feed.posts read settings and write post_embeddings with
    the engine's rights."""
    with acting(db_dsn, "pgfeed_t_app") as conn:
        conn.execute("INSERT INTO feed.posts (post_id, author_id, category, embedding)"
                     " VALUES (900, 1, 'art', array_fill(0.5::real, ARRAY[384])::public.vector)")
        conn.execute("UPDATE feed.posts SET category = 'film', embedding = NULL WHERE post_id = 900")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("UPDATE feed.posts SET like_count = 1000 WHERE post_id = 900")
        conn.execute("DELETE FROM feed.posts WHERE post_id = 900")


def test_nobody_role_can_call_nothing(db, db_dsn, roles):
    small_world(db)
    for name, statement in FUNCTION_CALLS.items():
        with acting(db_dsn, "pgfeed_t_nobody") as conn:
            assert sqlstate_of(conn, statement.format(user=7)) == "42501", name


# ---------------------------------------------------------------------------
# installation: roles are idempotent and shared by databases

def test_migrating_again_with_roles_present_is_a_no_op(empty_database):
    _, dsn = empty_database
    install.migrate(dsn)
    report = install.migrate(dsn)
    assert not report.changed
    with psycopg.connect(dsn) as conn:
        names = {r[0] for r in conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgfeed\\_%' AND NOT rolcanlogin").fetchall()}
        assert {"pgfeed_app", "pgfeed_viewer", "pgfeed_admin"} <= names
        assert conn.execute("SELECT pg_has_role('pgfeed_admin', 'pgfeed_app', 'MEMBER')").fetchone()[0]


def test_two_databases_share_the_roles_and_uninstall_keeps_them(pg_server):
    first, second = pg_server.create_database(), pg_server.create_database()
    try:
        install.migrate(pg_server.dsn(first))
        install.migrate(pg_server.dsn(second))
        env_dsn = pg_server.dsn(first)
        subprocess.run([sys.executable, "-m", "alembic", "downgrade", "base"], cwd=REPO, check=True,
                       capture_output=True, env={**__import__("os").environ, "PGFEED_DSN": env_dsn})
        with psycopg.connect(pg_server.dsn(second)) as conn:
            # the second database still uses them, so they stay
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname IN"
                                " ('pgfeed_app', 'pgfeed_viewer', 'pgfeed_admin')").fetchone()[0] == 3
            conn.execute("SET ROLE pgfeed_viewer")
            conn.execute("SELECT count(*) FROM feed.get_personalized_feed(NULL, 3, NULL)").fetchone()
        with psycopg.connect(pg_server.dsn(first)) as conn:
            assert conn.execute("SELECT to_regnamespace('feed')").fetchone()[0] is None
            # nothing of pgfeed's is left granted in the uninstalled database
            assert conn.execute(
                "SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid"
                " WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND r.rolname LIKE 'pgfeed\\_%'").fetchone()[0] == 0
    finally:
        pg_server.drop_database(first)
        pg_server.drop_database(second)


# ---------------------------------------------------------------------------
# static analysis: pgspot on the installed SQL

# Each waived finding with the reason it is safe. Only these eight helpers go
# without a pinned search_path; the attack test below proves them safe too.
PGSPOT_WAIVERS = {
    "PS005: Function without explicit search_path: feed._post_visible_to(":
        "inlined into the candidate query (a SET clause would make it a call per row); every operator qualified",
    "PS005: Function without explicit search_path: feed._uniform(":
        "inlined into the ranking queries; every operator and function qualified",
    "PS005: Function without explicit search_path: feed._decayed_affinity(":
        "inlined into the affinity writes and the ranking queries; every operator and function qualified",
    "PS005: Function without explicit search_path: feed._tag_matches(":
        "inlined into the ranking query (a call per candidate otherwise); every name qualified",
    "PS005: Function without explicit search_path: feed._category_affinity_step(":
        "a per-row aggregate step of the rebuild (SET made it 60% slower); every operator qualified",
    "PS005: Function without explicit search_path: feed._engagement_step(":
        "a per-row aggregate step of the rebuild; every operator qualified",
    "PS005: Function without explicit search_path: feed._is_integer_literal(":
        "inlined into the import checks; every operator qualified",
    "PS005: Function without explicit search_path: feed._is_number_literal(":
        "inlined into the import checks; every operator qualified",
}


def test_pgspot_finds_nothing_unwaived(tmp_path):
    pytest.importorskip("pgspot")
    files = [tmp_path / "000_schema.sql"]
    files[0].write_text(install.render_schema("public"))
    for name, text in install.render_functions("public"):
        path = tmp_path / f"f_{name}"
        path.write_text(text)
        files.append(path)
    result = subprocess.run([sys.executable, "-m", "pgspot", "-a", *map(str, files)],
                            capture_output=True, text=True)
    findings = [line for line in result.stdout.splitlines() if re.match(r"PS\d{3}:", line)]
    assert "TOTAL" in result.stdout, result.stdout + result.stderr
    unwaived = [f for f in findings if not any(f.startswith(w) for w in PGSPOT_WAIVERS)]
    assert unwaived == []
    # every waiver is still needed (a stale waiver hides nothing, but misleads)
    for waiver in PGSPOT_WAIVERS:
        assert any(f.startswith(waiver) for f in findings), waiver


# ---------------------------------------------------------------------------
# the attack: an unprivileged role plants look-alike operators and functions in
# public, before pgfeed is installed; a superuser then installs and uses it

TYPES = ["smallint", "integer", "bigint", "numeric", "real", "double precision", "text", "timestamptz",
         "interval", "jsonb", "boolean", "date"]
ARRAY_TYPES = ["integer[]", "bigint[]", "text[]", "real[]", "uuid", "bytea"]
OPERATORS = ["+", "-", "*", "/", "%", "^", "&", "|", "#", "<<", ">>", "=", "<>", "<", ">", "<=", ">=", "||",
             "->", "->>", "#>", "#>>", "?", "?|", "?&", "@>", "<@", "~", "!~", "~~", "!~~", "~*", "<=>", "<->",
             "<#>"]
COMPARISONS = {"=", "<>", "<", ">", "<=", ">=", "?", "?|", "?&", "@>", "<@", "~", "!~", "~~", "!~~", "~*"}
FUNCTIONS = {
    # name: (arities, return type)
    **{n: ((1,), "double precision") for n in ["abs", "floor", "ceil", "ceiling", "exp", "ln", "sqrt", "sign"]},
    **{n: ((1, 2), "double precision") for n in ["round", "trunc", "log"]},
    **{n: ((2,), "double precision") for n in ["power", "pow", "mod", "div"]},
    **{n: ((1, 2), "bigint") for n in ["hashint8extended", "hashtextextended", "hashint8", "hashtext"]},
    **{n: ((1,), "text") for n in ["md5", "lower", "upper", "length", "to_regprocedure", "to_regclass"]},
    **{n: ((1, 2), "bytea") for n in ["sha256", "decode", "convert_to", "int4send"]},
    **{n: ((1, 2, 3), "text") for n in ["btrim", "format", "concat", "replace", "translate", "substring", "encode",
                                        "left", "right", "lpad", "repeat", "split_part", "array_to_string",
                                        "current_setting", "set_config"]},
    **{n: ((1, 2, 3), "timestamptz") for n in ["date_trunc", "to_timestamp", "age", "make_interval"]},
    **{n: ((2,), "double precision") for n in ["date_part", "extract"]},
    **{n: ((1,), "boolean") for n in ["isfinite"]},
    **{n: ((1, 2, 3), "jsonb") for n in ["jsonb_build_object", "to_jsonb", "jsonb_set", "jsonb_extract_path",
                                         "jsonb_strip_nulls", "jsonb_array_elements", "jsonb_array_elements_text",
                                         "jsonb_each", "jsonb_each_text", "jsonb_object_keys"]},
    **{n: ((1,), "text") for n in ["jsonb_typeof"]},
    **{n: ((1, 2, 3), "integer") for n in ["array_position", "cardinality", "array_length", "jsonb_array_length",
                                           "width_bucket"]},
    **{n: ((2, 3), "integer[]") for n in ["array_fill", "array_remove", "array_append", "generate_series"]},
    **{n: ((1,), "bigint") for n in ["unnest", "nextval"]},
    **{n: ((2, 3), "boolean") for n in ["pg_has_role", "has_function_privilege"]},
}


def _signatures(arity: int) -> list[tuple[str, ...]]:
    if arity == 1:
        return [(t,) for t in TYPES + ARRAY_TYPES]
    if arity == 2:
        return [(a, b) for a in TYPES + ARRAY_TYPES[:2] for b in TYPES + ARRAY_TYPES[:2]]
    small = ["integer", "bigint", "numeric", "text", "double precision"]
    return [(a, b, c) for a in small for b in small for c in small]


def plant(conn) -> int:
    """As the attacker: look-alike objects in public, each bumping the
    (non-transactional) sequence public.pwned when it runs. Returns the count."""
    conn.execute("CREATE SEQUENCE public.pwned")
    conn.execute("GRANT USAGE ON SEQUENCE public.pwned TO PUBLIC")
    statements = []
    body = "$b$ BEGIN PERFORM pg_catalog.nextval('public.pwned'); RETURN NULL; END $b$"
    n = 0
    for op in OPERATORS:
        for left in TYPES:
            for right in TYPES:
                n += 1
                returns = "boolean" if op in COMPARISONS else left
                statements.append(f"CREATE FUNCTION public.pwn_op_{n}({left}, {right}) RETURNS {returns}"
                                  f" LANGUAGE plpgsql AS {body}")
                statements.append(f"CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right},"
                                  f" FUNCTION = public.pwn_op_{n})")
    for name, (arities, returns) in FUNCTIONS.items():
        for arity in arities:
            for signature in _signatures(arity):
                n += 1
                statements.append(f"CREATE FUNCTION public.{name}({', '.join(signature)}) RETURNS {returns}"
                                  f" LANGUAGE plpgsql AS {body}")
    for start in range(0, len(statements), 500):   # a transaction per batch: each object takes a lock
        with conn.transaction():
            for statement in statements[start:start + 500]:
                conn.execute(statement)
    return n


def exercise_everything(db) -> None:
    """As a superuser: every public function, in every mode and shipped
    profile, the scheduled work, the triggers, identity and row-level security.
    This session's own statements must not touch the planted objects either."""
    db.execute("SET search_path = pg_catalog, pg_temp")
    small_world(db)
    db.execute("INSERT INTO feed.blocks (user_id, blocked_user_id) VALUES (7, 103)")
    db.execute("INSERT INTO feed.collective_members (collective_id, user_id) VALUES (1, 7)")
    db.execute("INSERT INTO feed.user_preferences (user_id, muted_categories, preferred_post_types)"
               " VALUES (7, '{film}', '{video}')")
    db.execute("UPDATE feed.posts SET collective_id = 1 WHERE post_id IN (4, 8)")
    actions = ["view", "like", "unlike", "comment", "share", "praise", "trophy", "save", "not_interested",
               "report", "dislike"]
    for i, action in enumerate(actions):
        db.execute("SELECT feed.record_interaction(8, %s, %s, 0, 5)", [1 + i % 12, action])
    db.execute("SELECT feed.record_interaction(7, 2, 'gift', 2.50)")
    db.execute("SELECT feed.record_interaction(7, 3, 'tip', 1.25)")
    db.execute("SELECT feed.record_watch_progress(7, 5, 20000, 30000, true, true, true)")
    db.execute("SELECT feed.record_impression(7, 6, 'trending', 0.5, 'sess')")
    db.execute("SELECT feed.record_impressions(7, ARRAY[7, 9]::bigint[], 'sess')")
    db.execute("SELECT feed.build_recommendations('30 days')")
    db.execute("SELECT feed.build_recommendations('30 days', true)")
    profiles = [r[0] for r in db.execute("SELECT name FROM feed.ranking_profiles ORDER BY 1").fetchall()]
    for mode in MODES:
        for profile in profiles:
            for user in (7, 8, None):
                context = '{"mode": "%s", "profile": "%s", "device": "tv", "connection": "3g", "local_hour": 23}' % (
                    mode, profile)
                rows = db.execute("SELECT next_cursor FROM feed.get_personalized_feed(%s, 4, NULL, %s)",
                                  [user, context]).fetchall()
                if rows:
                    cursor = rows[0][0]
                    db.execute("SELECT * FROM feed.get_personalized_feed(%s, 4, %s)", [user, cursor]).fetchall()
                    db.execute("SELECT * FROM feed.get_personalized_feed(%s, 4, %s)", [user, cursor]).fetchall()
            db.execute("SELECT feed.explain_score(7, 2, %s)", ['{"profile": "%s"}' % profile])
    db.execute("SELECT * FROM feed.similar_posts(1, 5)").fetchall()
    db.execute("""INSERT INTO feed.experiments (name, variants, status) VALUES ('flag', '{"on": {"weight": 30,"""
               """ "profile": "hybrid", "settings": {"epsilon": 0.2}}, "control": {"weight": 70}}', 'running')""")
    with db.transaction(), contextlib.suppress(psycopg.errors.InvalidParameterValue):
        db.execute("""INSERT INTO feed.experiments (name, variants) VALUES ('bad', '{"x": {"weight": 1,"""
                   """ "settings": {"epsilon": "-1"}}}')""")
    db.execute("SELECT feed.assign_variant(7, 'flag'), feed._session_experiments(7, '{}'),"
               " feed._variant_settings('{\"flag\": \"on\"}'), feed._setting_override('epsilon')")
    db.execute("UPDATE feed.feed_sessions SET experiments = '{\"flag\": \"on\"}', expires_at = now() - interval '2 days'")
    db.execute("SELECT * FROM feed.experiment_results('flag')").fetchall()
    db.execute("SELECT * FROM feed.feed_metrics('30 days')").fetchall()
    db.execute("SELECT * FROM feed._page_metrics('30 days')").fetchall()
    db.execute("SELECT feed._rollup_analytics()")
    db.execute("SELECT * FROM feed.experiment_results('flag')").fetchall()
    db.execute("SELECT * FROM feed.feed_metrics('30 days')").fetchall()
    db.execute("UPDATE feed.experiments SET status = 'stopped' WHERE name = 'flag'")
    db.execute("SELECT feed.trending_score(1, 2, 3, 4.5, 6.5, now() - interval '3 hours')")
    db.execute("SELECT feed.refresh_trending_scores('30 days')")
    db.execute("SELECT feed.run_maintenance()")
    db.execute("UPDATE feed.settings SET value = '14 days' WHERE name = 'cooldown'")
    db.execute("UPDATE feed.ranking_profiles SET weights = weights || '{\"recency\": 0.5}' WHERE name = 'hybrid'")
    db.execute("UPDATE feed.posts SET embedding = NULL WHERE post_id = 12")
    db.execute("DELETE FROM feed.posts WHERE post_id = 11")
    db.execute("INSERT INTO feed.user_identities (subject, user_id) VALUES ('abc-uuid', 7)")
    with db.transaction():
        db.execute("SET LOCAL ROLE pgfeed_viewer")
        db.execute("SET LOCAL request.jwt.claims = '{\"sub\": \"abc-uuid\"}'")
        db.execute("SELECT feed.current_viewer()")
        db.execute("SELECT count(*) FROM feed.interactions").fetchone()
        db.execute("SELECT count(*) FROM feed.impressions").fetchone()
        db.execute("SELECT * FROM feed.get_personalized_feed(7, 3, NULL)").fetchall()


def test_planted_operators_and_functions_never_run(empty_database, pg_server):
    name, dsn = empty_database
    attacker = "pgfeed_t_attacker"
    with psycopg.connect(dsn, autocommit=True) as admin:
        with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            admin.execute(f"CREATE ROLE {attacker} NOLOGIN")
        admin.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {attacker}")
        admin.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        with admin.transaction():
            admin.execute(f"SET LOCAL ROLE {attacker}")
            planted = plant(admin)
        assert planted > 10000
    install.migrate(dsn)
    with psycopg.connect(dsn, autocommit=True) as db:
        exercise_everything(db)
        assert db.execute("SELECT is_called FROM public.pwned").fetchone()[0] is False, \
            "a planted object ran inside pgfeed"
        # the harness itself can fail: a function that leaves public on its path is hijacked
        db.execute("CREATE FUNCTION public.victim() RETURNS bigint LANGUAGE sql"
                   " SET search_path = pg_catalog, public AS 'SELECT 5::bigint & 3'")
        db.execute("SELECT public.victim()")
        assert db.execute("SELECT is_called FROM public.pwned").fetchone()[0] is True
    # the planted objects go with the database (empty_database drops it)


def test_a_callers_setting_overrides_never_reach_the_engine(db, db_dsn, roles):
    """Experiment overrides live in pgfeed.setting_overrides for the length of one feed
    call; a caller setting that name in its own transaction changes nothing."""
    small_world(db)
    db.execute("SELECT feed.record_impressions(7, ARRAY[6]::bigint[])")
    with acting(db_dsn, "pgfeed_t_viewer", viewer="7") as conn:
        assert conn.execute("SELECT feed.explain_score(7, 6) -> 'in_cooldown'").fetchone()[0] is True
        conn.execute("""SELECT set_config('pgfeed.setting_overrides', '{"cooldown": "0 seconds"}', true)""")
        assert conn.execute("SELECT feed.explain_score(7, 6) -> 'in_cooldown'").fetchone()[0] is True
        # the feed still treats post 6 as seen: at most a controlled repeat
        sources = dict(conn.execute(
            "SELECT post_id, source FROM feed.get_personalized_feed(7, 12, NULL, '{}')").fetchall())
        assert sources.get(6, "repeat") == "repeat", sources


def test_every_definer_function_clears_the_override_setting(db):
    unguarded = [r[0] for r in db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'feed'::regnamespace"
        " AND p.prosecdef AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c"
        "                                 WHERE c LIKE 'pgfeed.setting\\_overrides=%')").fetchall()]
    assert unguarded == []
