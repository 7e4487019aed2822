"""Migrations: fresh install == upgrade path, idempotence, concurrency, uninstall."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from pgfeed import install, resources

from .schema_snapshot import feed_schema_exists, snapshot

REPO = Path(__file__).resolve().parent.parent

# sha256 of each frozen revision file: a released revision never changes
FROZEN_REVISIONS = {
    "0001_baseline.sql": "3fd05d76f054f71e54bb3f809f1e1e5b08b1fbbbc448aadbb3e8acb97cc18f13",
    "0002_signals.sql": "53b82d2be004b4d3ea992f83333593329d3a8bdce875103ae92dcbe4f89332f1",
    "0004_post_embeddings.sql": "5b4c7698c2098a2da24829ba01a58e9d6fd177317cee0e64c6dba10af1370f32",
    "0003_feed_sessions_and_recommendations.sql": "12da73a591987df9b6602cb01ce6927c6e5b67054b12cfc4607347d0d82e400e",
    "0005_user_identities.sql": "f62eb93561287775eeba9e354822a2e8a9849140e6be5e7572ff3f679476a4e3",
    "0006_typed_settings_and_states.sql": "de009b516cbbcb0bed76eec0e8706ed9c2127bf5b0b2c49f7938ce1f16e0f405",
    "0007_fair_draws.sql": "9e2b9cb78cd3be7f5d4abdc3b16d24d567f4237a7a478ee009b040bbc5a0c60f",
    "0008_experiments.sql": "c3973c64b8116770785bfe8684c7debe0a0d33e32bfaba9be613351e02cea1ed",
    "0009_import_keys.sql": "88f4100a47e7b902405e09c9d01103afc2a5e0ab36f377f46984bfd7507d8387",
    "0010_tag_taste.sql": "c6243043517d60a85d592ca73b59d73666efd16d476d2065c60260f23a963ec8",
    "0011_analytics_tail.sql": "2843518a52761755a2da6f7528b058badc53e463abccbdd03af06c7f127b2a22",
    "0012_interactions_key_by_viewer.sql": "140057d0c117b510a87263fde94c4514b3f6ca0c18a4e43bd8181d1220f7d1c3",
    "0013_sessions_key_by_viewer.sql": "2787099b05b1c08a550b2dcfdcbc39292f2b59329e3049745f75a269c063703c",
}


def alembic(dsn: str, *args: str) -> subprocess.CompletedProcess:
    """Run the alembic CLI from the repository root, as a DBA would."""
    env = dict(os.environ, PGFEED_DSN=dsn)
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )


def first_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(install.alembic_config())
    return list(script.walk_revisions())[-1].revision


def test_fresh_install_equals_upgrade_from_first_revision(pg_server):
    fresh = pg_server.create_database()
    upgraded = pg_server.create_database()
    try:
        report = install.migrate(pg_server.dsn(fresh))
        assert report.fresh_install and report.functions_applied
        alembic(pg_server.dsn(upgraded), "upgrade", first_revision())
        alembic(pg_server.dsn(upgraded), "upgrade", "head")
        expected = snapshot(pg_server.dsn(fresh))
        assert expected["functions"], "the function files were applied"
        assert snapshot(pg_server.dsn(upgraded)) == expected
    finally:
        pg_server.drop_database(fresh)
        pg_server.drop_database(upgraded)


def test_downgrade_base_removes_pgfeed_and_keeps_host_tables(pg_server):
    name = pg_server.create_database()
    dsn = pg_server.dsn(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.host_orders (id int PRIMARY KEY)")
            conn.execute("INSERT INTO public.host_orders VALUES (1), (2)")
        install.migrate(dsn)
        before = snapshot(dsn)
        alembic(dsn, "downgrade", "base")
        assert not feed_schema_exists(dsn)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM public.host_orders").fetchone()[0] == 2
            # pgvector was created by pgfeed here, so it goes too
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 0
        alembic(dsn, "upgrade", "head")
        assert snapshot(dsn) == before
    finally:
        pg_server.drop_database(name)


def test_downgrade_keeps_a_pgvector_the_host_installed(pg_server):
    name = pg_server.create_database()
    dsn = pg_server.dsn(name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
            conn.execute("CREATE TABLE public.host_items (id int, v vector(3))")
        install.migrate(dsn)
        alembic(dsn, "downgrade", "base")
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 1
            assert conn.execute("SELECT to_regclass('public.host_items') IS NOT NULL").fetchone()[0]
    finally:
        pg_server.drop_database(name)


def test_migrate_twice_changes_nothing(empty_database):
    _, dsn = empty_database
    first = install.migrate(dsn)
    assert first.changed
    before = snapshot(dsn)
    second = install.migrate(dsn)
    assert not second.changed
    assert not second.functions_applied
    assert snapshot(dsn) == before


def test_concurrent_migrations_both_succeed(empty_database, pg_server):
    _, dsn = empty_database
    errors: list[BaseException] = []
    reports: list[install.MigrationReport] = []
    barrier = threading.Barrier(3)

    def run():
        barrier.wait()
        try:
            reports.append(install.migrate(dsn))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(report.fresh_install for report in reports) == 1
    reference = pg_server.create_database()
    try:
        install.migrate(pg_server.dsn(reference))
        assert snapshot(dsn) == snapshot(pg_server.dsn(reference))
    finally:
        pg_server.drop_database(reference)


def test_failed_migration_leaves_database_untouched(empty_database, monkeypatch, tmp_path):
    _, dsn = empty_database
    broken_sql = tmp_path / "sql"
    (broken_sql / "functions").mkdir(parents=True)
    (broken_sql / "schema").mkdir()
    (broken_sql / "schema" / "schema.sql").write_text((resources.sql_dir() / "schema" / "schema.sql").read_text())
    (broken_sql / "functions" / "00_broken.sql").write_text("CREATE FUNCTION feed.broken( RETURNS int;")
    monkeypatch.setattr(resources, "sql_dir", lambda: broken_sql)
    with pytest.raises(install.MigrationError, match="00_broken.sql"):
        install.migrate(dsn)
    assert not feed_schema_exists(dsn)


def test_embedding_dimension_is_chosen_at_install(empty_database):
    _, dsn = empty_database
    report = install.migrate(dsn, embedding_dim=768)
    assert report.embedding_dim == 768
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert install.embedding_dimension(conn) == 768
        conn.execute(
            "INSERT INTO feed.posts (post_id, author_id, category, embedding) VALUES (1, 1, 'art', %s::vector)",
            ["[" + ",".join(["0.1"] * 768) + "]"],
        )
    with pytest.raises(install.MigrationError, match="already holds vectors"):
        install.migrate(dsn, embedding_dim=384)
    with psycopg.connect(dsn) as conn:
        assert install.embedding_dimension(conn) == 768


def test_migrate_sql_prints_the_install_for_review(empty_database):
    _, dsn = empty_database
    text = install.migration_sql(dsn)
    assert "CREATE TABLE feed.posts" in text
    assert "pg_advisory_xact_lock" in text
    assert "CREATE OR REPLACE FUNCTION feed._setting" in text
    assert not feed_schema_exists(dsn), "--sql must not change the database"
    install.migrate(dsn)
    at_head = install.migration_sql(dsn)
    assert "schema already at head" in at_head
    assert "CREATE TABLE feed.posts" not in at_head


def test_migrate_sql_output_installs_with_psql_semantics(empty_database, pg_server):
    """What --sql prints is a complete install: running it gives the same schema."""
    _, dsn = empty_database
    text = install.migration_sql(None)
    with psycopg.connect(dsn) as conn:
        conn.execute(text.encode())
    reference = pg_server.create_database()
    try:
        install.migrate(pg_server.dsn(reference))
        got, expected = snapshot(dsn), snapshot(pg_server.dsn(reference))
        got.pop("install_state"), expected.pop("install_state")
        assert got == expected
    finally:
        pg_server.drop_database(reference)


def test_frozen_revisions_never_change():
    versions = resources.alembic_dir() / "versions"
    for name, digest in FROZEN_REVISIONS.items():
        assert hashlib.sha256((versions / name).read_bytes()).hexdigest() == digest, (
            f"{name} was edited after release; add a new revision instead"
        )


def test_every_revision_file_is_in_the_chain():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(install.alembic_config())
    revisions = {rev.module.__file__ for rev in script.walk_revisions()}
    files = {str(p) for p in (resources.alembic_dir() / "versions").glob("*.py")}
    assert files == revisions
    assert len(script.get_heads()) == 1
