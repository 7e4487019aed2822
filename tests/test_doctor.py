"""`pgfeed doctor` against the installed shape, and `pgfeed migrate` repairing it.

The expected shape is sql/manifest.json, generated from a fresh install;
test_manifest_is_a_fresh_install keeps it from drifting from the SQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from pgfeed import install
from pgfeed import shape as shapes
from pgfeed.cli import cli

from .helpers import add_post

REPO = Path(__file__).resolve().parent.parent


def doctor(dsn: str) -> tuple[int, str, dict]:
    """(exit code, text output with whitespace normalized, {check name: check}) of pgfeed doctor."""
    text = CliRunner().invoke(cli, ["doctor", "--dsn", dsn], catch_exceptions=False)
    as_json = CliRunner().invoke(cli, ["doctor", "--dsn", dsn, "--json"], catch_exceptions=False)
    assert text.exit_code == as_json.exit_code
    report = json.loads(as_json.output)
    assert report["ok"] is (as_json.exit_code == 0)
    return text.exit_code, " ".join(text.output.split()), {c["name"]: c for c in report["checks"]}


def failing(checks: dict) -> dict:
    return {name: check for name, check in checks.items() if check["status"] == "fail"}


def test_manifest_is_a_fresh_install(empty_database):
    """A fresh install has exactly the shape of sql/manifest.json. When the SQL
    changes, regenerate the manifest with the command in the message."""
    _, dsn = empty_database
    install.migrate(dsn)
    manifest = shapes.load_manifest()
    hint = f"sql/manifest.json is out of date: regenerate it with `{shapes.REGENERATE_COMMAND}`"
    assert manifest["sources_sha256"] == shapes.sources_digest(), hint
    assert manifest["revision"] == install.head_revision(), hint
    with psycopg.connect(dsn) as conn:
        fresh = shapes.read_shape(conn)
    assert [str(d) for d in shapes.compare(manifest["shape"], fresh)] == [], hint
    # extension versions depend on the server, not on pgfeed: names only
    assert sorted(fresh["extensions"]) == sorted(manifest["shape"]["extensions"]), hint
    fresh.pop("extensions"), manifest["shape"].pop("extensions")
    assert fresh == manifest["shape"], hint
    assert all(index["valid"] for index in fresh["indexes"].values())


def test_clean_install_is_healthy(db_dsn):
    code, output, checks = doctor(db_dsn)
    assert code == 0, output
    for name in ("tables", "columns", "constraints", "indexes", "functions", "triggers", "grants",
                 "row level security"):
        assert checks[name]["status"] == "ok", checks[name]
    assert "present and valid" in checks["indexes"]["detail"] and "present and valid" in output


def _function_body_changed(db):
    source = db.execute("SELECT pg_get_functiondef('feed._setting(text)'::regprocedure)").fetchone()[0]
    db.execute(source.replace("$function$\n", "$function$\n-- changed by hand\n", 1))


def _public_execute(db):
    functions = shapes.load_manifest()["shape"]["functions"]
    without = sorted(sig for sig, f in functions.items() if "PUBLIC:EXECUTE" not in f["grants"])
    if not without:
        pytest.skip("this version grants EXECUTE on every function to PUBLIC (no revoke shipped yet)")
    db.execute(f"GRANT EXECUTE ON FUNCTION {without[0]} TO PUBLIC")
    return without[0]


DAMAGE = {
    # name: (what is done, the check that fails, what its output says)
    "dropped index": ("DROP INDEX feed.posts_trending_idx", "indexes", "index feed.posts_trending_idx is missing"),
    "dropped unique index": ("DROP INDEX feed.impressions_user_post_session_key", "indexes",
                             "index feed.impressions_user_post_session_key is missing"),
    "invalid index": ("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'feed.posts_created_idx'::regclass",
                      "indexes", "index feed.posts_created_idx is invalid"),
    "dropped default": ("ALTER TABLE feed.posts ALTER COLUMN created_at DROP DEFAULT", "columns",
                        "column feed.posts.created_at: default is none, expected now()"),
    "dropped not null": ("ALTER TABLE feed.posts ALTER COLUMN category DROP NOT NULL", "columns",
                         "column feed.posts.category: NOT NULL expected"),
    "dropped check": ("ALTER TABLE feed.posts DROP CONSTRAINT posts_visibility_known", "constraints",
                      "constraint posts_visibility_known on feed.posts is missing"),
    "dropped foreign key": ("ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_session_fkey",
                            "constraints",
                            "constraint feed_session_items_session_fkey on feed.feed_session_items is missing"),
    "changed function": (_function_body_changed, "functions",
                         "function feed._setting(text): definition differs from this version's"),
    "dropped trigger": ("DROP TRIGGER posts_rescore ON feed.posts", "triggers",
                        "trigger posts_rescore on feed.posts is missing"),
    "public execute": (_public_execute, "grants", "granted beyond this version's: PUBLIC:EXECUTE"),
    "public select": ("GRANT SELECT ON feed.settings TO PUBLIC", "grants",
                      "table feed.settings: granted beyond this version's: PUBLIC:SELECT"),
    "revoked from owner": ("REVOKE TRUNCATE ON feed.posts FROM CURRENT_USER", "grants",
                           "table feed.posts: missing grants: <owner>:TRUNCATE"),
    "row level security": ("ALTER TABLE feed.posts ENABLE ROW LEVEL SECURITY", "row level security",
                           "table feed.posts: row level security off expected, found on"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_doctor_names_each_difference_and_migrate_repairs_it(db, db_dsn, case):
    action, check, message = DAMAGE[case]
    if callable(action):
        result = action(db)
        if case == "public execute":
            message = f"function {result}: {message}"
    else:
        db.execute(action)
    code, output, checks = doctor(db_dsn)
    assert code == 1
    assert message in output
    assert list(failing(checks)) == [check], failing(checks)
    assert any(message in d["message"] for d in checks[check]["differences"])

    # migrate --sql shows the repair and changes nothing
    assert "-- repairs:" in install.migration_sql(db_dsn)
    assert doctor(db_dsn)[0] == 1

    migrated = CliRunner().invoke(cli, ["migrate", "--dsn", db_dsn], catch_exceptions=False)
    assert migrated.exit_code == 0 and "repaired: " in migrated.output, migrated.output
    assert "not repaired" not in migrated.output
    code, output, checks = doctor(db_dsn)
    assert code == 0, output
    again = install.migrate(db_dsn)
    assert not again.changed and again.repairs == [] and again.not_repaired == []


def test_a_stray_column_is_named_and_left_alone(db, db_dsn):
    db.execute("ALTER TABLE feed.posts ADD COLUMN stray integer")
    code, output, checks = doctor(db_dsn)
    assert code == 1 and "column feed.posts.stray is not part of this version" in output
    assert list(failing(checks)) == ["columns"]
    report = install.migrate(db_dsn)
    assert report.repairs == [] and not report.changed
    assert report.not_repaired == ["column feed.posts.stray is not part of this version"]
    assert db.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'feed'"
                      " AND table_name = 'posts' AND column_name = 'stray'").fetchone()[0] == 1
    assert doctor(db_dsn)[0] == 1


def test_a_grant_to_a_host_role_is_named_and_kept(db, db_dsn):
    db.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'host_reader')"
               " THEN CREATE ROLE host_reader; END IF; END $$")
    db.execute("GRANT SELECT ON feed.posts TO host_reader")
    code, output, _ = doctor(db_dsn)
    assert code == 1 and "table feed.posts: granted beyond this version's: host_reader:SELECT" in output
    report = install.migrate(db_dsn)
    assert report.repairs == [] and any("host_reader" in line for line in report.not_repaired)
    assert db.execute("SELECT has_table_privilege('host_reader', 'feed.posts', 'SELECT')").fetchone()[0]
    db.execute("REVOKE SELECT ON feed.posts FROM host_reader")


def test_many_differences_at_once_are_all_named_and_repaired(db, db_dsn):
    for statement in ("DROP INDEX feed.posts_trending_idx", "DROP INDEX feed.post_embeddings_hnsw_idx",
                      "DROP INDEX feed.follows_followee_idx",
                      "ALTER TABLE feed.posts ALTER COLUMN like_count DROP DEFAULT",
                      "ALTER TABLE feed.blocks DROP CONSTRAINT blocks_not_self"):
        db.execute(statement)
    _function_body_changed(db)
    code, output, checks = doctor(db_dsn)
    assert code == 1
    for name in ("index feed.posts_trending_idx is missing", "index feed.post_embeddings_hnsw_idx is missing",
                 "index feed.follows_followee_idx is missing", "column feed.posts.like_count: default is none",
                 "constraint blocks_not_self on feed.blocks is missing", "function feed._setting(text)"):
        assert name in output
    assert set(failing(checks)) == {"indexes", "columns", "constraints", "functions"}
    report = install.migrate(db_dsn)
    assert len(report.repairs) == 6 and report.functions_applied and report.not_repaired == []
    assert doctor(db_dsn)[0] == 0
    assert not install.migrate(db_dsn).changed


def test_a_repair_that_cannot_run_is_reported_and_the_others_still_happen(db, db_dsn):
    db.execute("ALTER TABLE feed.posts ALTER COLUMN category DROP NOT NULL")
    db.execute("ALTER TABLE feed.posts DROP CONSTRAINT posts_category_not_empty")
    db.execute("INSERT INTO feed.posts (post_id, author_id, category) VALUES (1, 1, NULL)")
    db.execute("DROP INDEX feed.posts_trending_idx")
    report = install.migrate(db_dsn)
    assert "created missing index feed.posts_trending_idx" in report.repairs
    assert "created constraint posts_category_not_empty on feed.posts" in report.repairs
    assert any("NOT NULL" in line and "feed.posts.category" in line for line in report.repair_failures)
    assert any("feed.posts.category" in line for line in report.not_repaired)
    code, output, checks = doctor(db_dsn)
    assert code == 1 and list(failing(checks)) == ["columns"]


def test_migrate_sql_prints_the_repairs(db, db_dsn):
    db.execute("DROP INDEX feed.posts_trending_idx")
    db.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'feed.posts_created_idx'::regclass")
    result = CliRunner().invoke(cli, ["migrate", "--sql", "--dsn", db_dsn], catch_exceptions=False)
    assert result.exit_code == 0
    assert "CREATE INDEX posts_trending_idx ON feed.posts USING btree (trending_score DESC);" in result.output
    assert 'REINDEX INDEX "feed"."posts_created_idx";' in result.output
    assert db.execute("SELECT to_regclass('feed.posts_trending_idx')").fetchone()[0] is None
    # what it prints repairs the database under psql semantics (one transaction)
    with psycopg.connect(db_dsn) as conn:
        conn.execute(result.output.encode())
    assert doctor(db_dsn)[0] == 0
    assert "nothing differs from the installed shape" in install.migration_sql(db_dsn)


def test_staleness_is_a_warning_not_a_failure(db, db_dsn):
    add_post(db, 1)
    code, _, checks = doctor(db_dsn)
    assert code == 0 and checks["heartbeat"]["status"] == "warn"
    db.execute("SELECT feed.run_maintenance()")
    db.execute("UPDATE feed.job_runs SET last_run_at = now() - interval '3 hours' WHERE job = 'heartbeat'")
    code, _, checks = doctor(db_dsn)
    assert code == 0 and checks["heartbeat"]["status"] == "warn"


def test_another_embedding_dimension_is_no_difference(empty_database):
    _, dsn = empty_database
    install.migrate(dsn, embedding_dim=768)
    code, output, _ = doctor(dsn)
    assert code == 0, output
    assert not install.migrate(dsn).changed


def test_an_upgraded_install_has_the_shape_of_a_fresh_one(empty_database):
    """Through every alembic revision from the first: doctor finds nothing."""
    _, dsn = empty_database
    from alembic.script import ScriptDirectory

    first = list(ScriptDirectory.from_config(install.alembic_config()).walk_revisions())[-1].revision
    env = dict(os.environ, PGFEED_DSN=dsn)
    env.pop("DATABASE_URL", None)
    for target in (first, "head"):
        subprocess.run([sys.executable, "-m", "alembic", "upgrade", target], cwd=REPO, env=env,
                       capture_output=True, text=True, check=True)
    code, output, _ = doctor(dsn)
    assert code == 0, output


def test_a_stale_manifest_is_reported_and_repairs_are_skipped(db, db_dsn, monkeypatch, tmp_path):
    manifest = shapes.load_manifest()
    manifest["sources_sha256"] = "0" * 64
    stale = tmp_path / "manifest.json"
    shapes.write_manifest(manifest, stale)
    monkeypatch.setattr(shapes, "manifest_path", lambda: stale)
    db.execute("DROP INDEX feed.posts_trending_idx")
    code, output, checks = doctor(db_dsn)
    assert code == 1 and checks["manifest"]["status"] == "fail" and shapes.REGENERATE_COMMAND in output
    report = install.migrate(db_dsn)
    assert report.repairs == [] and "regenerate" in report.repair_skipped


def test_pgvector_in_another_schema_is_no_difference(empty_database):
    """A host (Supabase, for one) keeps pgvector in its own schema: the shape reads it away."""
    name, dsn = empty_database
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA extensions")
        conn.execute("CREATE EXTENSION vector SCHEMA extensions")
        # as Supabase does (schema.sql names the type vector unqualified)
        conn.execute(f'ALTER DATABASE "{name}" SET search_path = "$user", public, extensions')
    install.migrate(dsn)
    code, output, _ = doctor(dsn)
    assert code == 0, output
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX feed.post_embeddings_hnsw_idx")
    assert "index feed.post_embeddings_hnsw_idx is missing" in doctor(dsn)[1]
    assert install.migrate(dsn).repairs == ["created missing index feed.post_embeddings_hnsw_idx"]
    assert doctor(dsn)[0] == 0
