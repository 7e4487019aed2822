"""pgfeed distributed on a real Citus cluster: a coordinator and two workers (tests/citus_cluster.py).

`migrate` on the coordinator distributes the per-viewer tables by viewer,
colocated, copies the shared tables to every node, propagates the functions
and registers the per-viewer entry points for delegation (docs/distributed.md).
These tests check that placement and that running it again changes nothing;
that a server holding data becomes a cluster by running `migrate` again; that
the page guarantees hold across pages and retries on the distributed tables
(the property checks of test_feed_properties.py, on fewer examples); that the
cluster ranks exactly as one server on the same world; which path a call takes
(delegated, or through the coordinator inside a transaction); that the writes,
jobs, roles and identity work; and that `doctor` checks the distribution.

They skip, saying why, where Citus is not installed in this venv's embedded
server; under CI=true that fails instead.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgfeed import distribution, doctor, install
from pgfeed.cli import cli

from .helpers import add_post
from .test_feed_properties import check_session, eligible, fetch_page, load, worlds

pytestmark = pytest.mark.citus


@pytest.fixture(scope="module")
def citus_db(citus_cluster):
    """A database with Citus on every node and pgfeed migrated (so distributed) through
    the coordinator: (name, coordinator DSN, first migration's report)."""
    name = f"pgfeed_citus_{uuid.uuid4().hex[:8]}"
    dsn = citus_cluster.create_database(name)
    try:
        report = install.migrate(dsn)
        yield name, dsn, report
    finally:
        citus_cluster.drop_database(name)


@pytest.fixture
def conn(citus_db):
    with psycopg.connect(citus_db[1], autocommit=True) as connection:
        yield connection


def _placement(conn) -> dict[str, tuple[str, str | None]]:
    return {name: (method, column) for name, method, column in conn.execute(
        "SELECT c.relname, p.partmethod::text,"
        " CASE WHEN p.partmethod = 'h' THEN column_to_column_name(p.logicalrelid, p.partkey) END"
        " FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid"
        " WHERE c.relnamespace = 'feed'::regnamespace").fetchall()}


def test_the_cluster_has_a_coordinator_and_two_workers(conn):
    nodes = conn.execute("SELECT groupid = 0, shouldhaveshards, isactive FROM pg_dist_node ORDER BY groupid").fetchall()
    assert nodes == [(True, False, True), (False, True, True), (False, True, True)]


def test_migrate_distributes_as_planned_and_again_changes_nothing(citus_db, conn):
    name, dsn, first = citus_db
    assert first.fresh_install and first.distributed
    assert first.citus == "Citus 14.0-1 with 2 workers; 17 pgfeed tables distributed by viewer, 12 reference tables"
    placed = _placement(conn)
    for table, column in distribution.DISTRIBUTED_BY_VIEWER.items():
        assert placed[table] == ("h", column), table
    for table in distribution.REFERENCE:
        assert placed[table][0] == "n", table
    colocations = {r[0] for r in conn.execute(
        "SELECT DISTINCT p.colocationid FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid"
        " WHERE c.relnamespace = 'feed'::regnamespace AND p.partmethod = 'h'").fetchall()}
    assert len(colocations) == 1
    delegated = {r[0] for r in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_dist_object o JOIN pg_proc p ON p.oid = o.objid"
        " WHERE o.classid = 'pg_proc'::regclass AND o.distribution_argument_index IS NOT NULL").fetchall()}
    assert delegated == {f"feed.{s}" for s in distribution.DELEGATED}
    second = install.migrate(dsn)
    assert second.changed is False and second.distributed == [] and second.repairs == []
    assert second.not_repaired == [] and second.citus == first.citus
    result = CliRunner().invoke(cli, ["migrate", "--dsn", dsn])
    assert result.exit_code == 0, result.output
    assert "citus: Citus 14" in result.output and "functions unchanged" in result.output
    sql = CliRunner().invoke(cli, ["migrate", "--sql", "--dsn", dsn])
    assert sql.exit_code == 0 and "-- distribution: everything is in place" in sql.output


def test_migrate_sql_shows_the_distribution_it_will_do(citus_cluster):
    name = f"pgfeed_citus_{uuid.uuid4().hex[:8]}"
    dsn = citus_cluster.create_database(name)
    try:
        report = install.migrate(dsn, distribute=False)
        assert report.distributed == [] and "not distributed yet" in report.citus
        sql = install.migration_sql(dsn)
        assert "create_distributed_table('feed.seen_posts', 'user_id', colocate_with := 'none')" in sql
        assert "create_reference_table('feed.posts')" in sql
        assert "create_distributed_function('feed.get_personalized_feed(bigint,integer,text,jsonb)', 'p_user_id'" in sql
        with psycopg.connect(dsn, autocommit=True) as c:
            assert _placement(c) == {}
        check = next(c for c in doctor.run_checks(dsn) if c["name"] == "citus")
        assert check["status"] == "fail" and "to do: distribute feed.seen_posts by user_id" in check["detail"]
    finally:
        citus_cluster.drop_database(name)


def test_migrate_on_one_server_says_nothing_of_citus(db_dsn):
    """Single-server installs are unchanged: no Citus line, no Citus query."""
    report = install.migrate(db_dsn)
    assert report.citus is None and report.distributed == []
    assert "-- distribution" not in install.migration_sql(db_dsn)
    assert "citus" not in [c["name"] for c in doctor.run_checks(db_dsn)]


def test_doctor_on_the_coordinator(citus_db):
    checks = {c["name"]: c for c in doctor.run_checks(citus_db[1])}
    assert checks["citus"]["status"] == "ok" and "17 pgfeed tables distributed by viewer" in checks["citus"]["detail"]
    assert [c for c in checks.values() if c["status"] == "fail"] == []
    result = CliRunner().invoke(cli, ["doctor", "--dsn", citus_db[1], "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and any(c["name"] == "citus" for c in report["checks"])


def test_doctor_names_a_table_undistributed_by_hand_and_migrate_puts_it_back(citus_cluster):
    name = f"pgfeed_citus_{uuid.uuid4().hex[:8]}"
    dsn = citus_cluster.create_database(name)
    try:
        install.migrate(dsn)
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SELECT undistribute_table('feed.user_signals')")
            c.execute("ALTER FUNCTION feed.record_interaction(bigint,bigint,text,numeric,integer)"
                      " RESET plan_cache_mode")
        check = next(c for c in doctor.run_checks(dsn) if c["name"] == "citus")
        assert check["status"] == "fail" and "distribute feed.user_signals by user_id" in check["detail"]
        assert "custom plans for feed.record_interaction" in check["detail"]
        assert check["fix"].startswith("pgfeed migrate")
        report = install.migrate(dsn)
        assert report.distributed == ["distribute feed.user_signals by user_id",
                                      "custom plans for feed.record_interaction"]
        check = next(c for c in doctor.run_checks(dsn) if c["name"] == "citus")
        assert check["status"] == "ok", check
    finally:
        citus_cluster.drop_database(name)


def test_one_server_becomes_a_cluster_and_migrate_distributes_its_data(citus_cluster):
    """docs/operations.md: pgfeed with data on a server, then Citus and workers added, then migrate."""
    from . import citus_cluster as cc

    name = f"pgfeed_citus_{uuid.uuid4().hex[:8]}"
    for node in citus_cluster.nodes:
        with psycopg.connect(node.dsn(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
    dsn = citus_cluster.coordinator.dsn(name)
    counts = ("SELECT (SELECT count(*) FROM feed.posts), (SELECT count(*) FROM feed.interactions),"
              " (SELECT count(*) FROM feed.seen_posts), (SELECT count(*) FROM feed.feed_sessions),"
              " (SELECT count(*) FROM feed.feed_session_items), (SELECT like_count FROM feed.posts WHERE post_id = 3)")
    try:
        assert install.migrate(dsn).citus is None  # no citus extension in this database yet
        with psycopg.connect(dsn, autocommit=True) as c:
            for post_id in range(1, 21):
                add_post(c, post_id, author_id=1000 + post_id % 5, age=f"{post_id} hours")
            c.execute("SELECT feed.record_interaction(1, 3, 'like')")
            before = fetch_page(c, 1, 5, None, {})
            anonymous = fetch_page(c, None, 5, None, {})
            held = c.execute(counts).fetchone()
        for node in citus_cluster.workers:
            with psycopg.connect(node.dsn(name), autocommit=True) as c:
                c.execute("CREATE EXTENSION citus")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE EXTENSION citus")
            c.execute("SELECT citus_set_coordinator_host(%s, %s)", [cc.HOST, citus_cluster.coordinator.port])
            for node in citus_cluster.workers:
                c.execute("SELECT citus_add_node(%s, %s)", [cc.HOST, node.port])
        report = install.migrate(dsn)
        assert report.changed is True and report.not_repaired == [] and "17 pgfeed tables" in report.citus
        with psycopg.connect(dsn, autocommit=True) as c:
            assert len(_placement(c)) >= 29
            assert c.execute(counts).fetchone() == held
            # the sessions started before Citus continue, and a retried cursor is the same page
            assert fetch_page(c, 1, 5, before[0][7], {}) == fetch_page(c, 1, 5, before[0][7], {})
            assert not {r[1] for r in fetch_page(c, 1, 5, before[0][7], {})} & {r[1] for r in before}
            assert not {r[1] for r in fetch_page(c, None, 5, anonymous[0][7], {})} & {r[1] for r in anonymous}
        assert [ch for ch in doctor.run_checks(dsn) if ch["status"] == "fail"] == []
    finally:
        citus_cluster.drop_database(name)


# ---------------------------------------------------------------------------
# the page guarantees on the distributed tables (fewer examples than on one server)

@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(world=worlds(), size=st.sampled_from([1, 3, 5, 12]),
       mode=st.sampled_from([None, "personalized", "trending", "chronological", "random"]))
def test_every_page_keeps_the_contract_on_the_cluster(conn, world, size, mode):
    load(conn, world)
    for viewer in (1, 2, None):
        check_session(conn, world, viewer, mode, size)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(world=worlds(), size=st.sampled_from([2, 5]))
def test_a_retried_page_on_the_cluster_is_the_page_as_served(conn, world, size):
    load(conn, world)
    first = fetch_page(conn, 1, size, None, {})
    if not first:
        return
    second = fetch_page(conn, 1, size, first[0][7], {})
    hidden = second[0][1] if second else None
    if hidden is not None:
        conn.execute("SELECT feed.record_interaction(1, %s, 'not_interested')", [hidden])
        world.hidden.setdefault(1, set()).add(hidden)
    replay = fetch_page(conn, 1, size, first[0][7], {})
    posts = {p.post_id: p for p in world.posts}
    assert [r[1] for r in replay] == [r[1] for r in second if eligible(world, 1, posts[r[1]])]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(world=worlds())
def test_the_cluster_ranks_as_one_server(conn, db, world):
    """The same world on one server and on the cluster: every post's explanation (eligibility,
    exclusions, each component and the score) and the pages of the modes whose order does not
    depend on the session's random seed are the same."""
    load(conn, world)
    load(db, world)
    tags = "UPDATE feed.posts SET tags = ARRAY['cats', 'dogs'] WHERE post_id % 2 = 0"
    conn.execute(tags)
    db.execute(tags)
    liked = sorted(p.post_id for p in world.posts if p.post_id % 4 == 0 and p.visibility == "public"
                   and not p.is_deleted and p.media_ready)[:2]
    for target in (conn, db):
        for post_id in liked:
            target.execute("SELECT feed.record_interaction(1, %s, 'like')", [post_id])
    explain = ("SELECT p.post_id, feed.explain_score(%s, p.post_id, %s) - 'last_seen_at'"
               " FROM feed.posts p ORDER BY 1")
    for viewer in (1, 2):
        for profile in ("default", "default_plus"):
            context = psycopg.types.json.Jsonb({"profile": profile})
            _assert_same(conn.execute(explain, [viewer, context]).fetchall(),
                         db.execute(explain, [viewer, context]).fetchall(), f"viewer {viewer}, {profile}")
    for viewer in (1, None):
        for mode in ("trending", "chronological"):
            cluster = [(r[1], r[4], r[5]) for r in fetch_page(conn, viewer, 12, None, {"mode": mode})]
            single = [(r[1], r[4], r[5]) for r in fetch_page(db, viewer, 12, None, {"mode": mode})]
            assert cluster == single, (viewer, mode)


def _assert_same(a, b, label: str) -> None:
    """Equal, numbers within 1e-4: the two worlds were loaded seconds apart, so
    recency (which depends on now()) differs in the last digits. On failure
    every differing path is listed, with both sides."""
    differences: list[str] = []
    _differences(a, b, "", differences)
    assert not differences, label + ":\n" + "\n".join(differences[:40])


def _differences(a, b, path: str, out: list[str]) -> None:
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and a == pytest.approx(b, rel=1e-4, abs=1e-4)):
            out.append(f"{path}: cluster {a!r}, one server {b!r}")
    elif isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            out.append(f"{path}: keys cluster {sorted(a)}, one server {sorted(b)}")
        for key in a.keys() & b.keys():
            _differences(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items on the cluster, {len(b)} on one server")
        for i, (x, y) in enumerate(zip(a, b)):
            _differences(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: cluster {a!r}, one server {b!r}")


# ---------------------------------------------------------------------------
# which path a call takes

def test_a_bare_call_is_delegated_and_a_call_in_a_transaction_runs_on_the_coordinator(conn):
    _small_world(conn)
    sent: list[str] = []
    conn.add_notice_handler(lambda notice: sent.append(notice.message_primary or ""))
    conn.execute("SET citus.log_remote_commands = on")
    try:
        fetch_page(conn, 1, 5, None, {})
        conn.execute("SELECT feed.record_interaction(1, 5, 'like')")
        delegated = [m for m in sent if "feed.get_personalized_feed(" in m or "feed.record_interaction(" in m]
        assert len(delegated) == 2, sent
        sent.clear()
        with conn.transaction():
            fetch_page(conn, 2, 5, None, {})
        assert sent and not [m for m in sent if "feed.get_personalized_feed(" in m], sent
    finally:
        conn.execute("RESET citus.log_remote_commands")


# ---------------------------------------------------------------------------
# writes, jobs, roles and identity

def _small_world(conn) -> None:
    conn.execute("TRUNCATE feed.posts, feed.interactions, feed.impressions, feed.seen_posts, feed.hidden_posts,"
                 " feed.feed_sessions, feed.user_post_state, feed.blocks, feed.follows CASCADE")
    for post_id in range(1, 41):
        add_post(conn, post_id, author_id=1000 + post_id % 9, category=["art", "music", "food"][post_id % 3],
                 age=f"{post_id} hours")


def test_writes_and_jobs_on_the_cluster(conn):
    _small_world(conn)
    conn.execute("SELECT feed.record_interaction(1, 5, 'like')")
    conn.execute("SELECT feed.record_interaction(1, 6, 'not_interested')")
    conn.execute("SELECT feed.record_impressions(1, ARRAY[7, 8]::bigint[])")
    conn.execute("SELECT feed.record_watch_progress(1, 9, 9000, 10000)")
    assert conn.execute("SELECT like_count FROM feed.posts WHERE post_id = 5").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM feed.seen_posts WHERE user_id = 1").fetchone()[0] == 5
    served = [r[1] for r in fetch_page(conn, 1, 40, None, {})]
    assert 6 not in served and served  # hidden: never shown
    conn.execute("SELECT feed.run_maintenance()")
    conn.execute("SELECT feed.build_recommendations()")
    conn.execute("SELECT feed.rebuild_counters()")
    assert conn.execute("SELECT like_count FROM feed.posts WHERE post_id = 5").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM feed.job_runs WHERE job IN ('heartbeat', 'build_recommendations')"
                        ).fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM feed.feed_metrics('1 day')").fetchone()[0] >= 1
    explained = conn.execute("SELECT count(*) FROM feed.explain_score(1, 10)").fetchone()[0]
    assert explained >= 1


def test_roles_and_identity_on_the_cluster(conn):
    _small_world(conn)
    with conn.transaction():
        conn.execute("SET LOCAL ROLE pgfeed_viewer")
        conn.execute("SET LOCAL pgfeed.viewer_id = '3'")
        assert fetch_page(conn, 3, 5, None, {})
        conn.execute("SELECT feed.record_interaction(3, 11, 'like')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                fetch_page(conn, 4, 5, None, {})
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("SELECT count(*) FROM feed.posts")
    # PostgREST's way: the JWT claims in a transaction-local setting
    with conn.transaction():
        conn.execute("SET LOCAL ROLE pgfeed_viewer")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps({"sub": "4"})])
        assert conn.execute("SELECT feed.current_viewer()").fetchone()[0] == 4
        assert fetch_page(conn, 4, 5, None, {})
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("SELECT feed.record_interaction(3, 12, 'like')")
    # an end user's own read of the engagement log (row-level security) does not work on a
    # cluster (docs/distributed.md): Citus reads the shards as the caller's role, which cannot
    # log in, and the policy could not read the identity there. It fails, and shows nothing.
    with pytest.raises(psycopg.Error):
        with conn.transaction():
            conn.execute("SET LOCAL ROLE pgfeed_viewer")
            conn.execute("SET LOCAL pgfeed.viewer_id = '3'")
            conn.execute("SELECT user_id FROM feed.interactions").fetchall()
    # a viewer calling outside a transaction is delegated to a worker, which Citus reaches as
    # the caller's role (a group role cannot log in) and where the identity set in the session
    # is unknown: refused either way, never served as another viewer
    conn.execute("SET ROLE pgfeed_viewer")
    conn.execute("SET pgfeed.viewer_id = '3'")
    try:
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ConnectionFailure)):
            fetch_page(conn, 3, 5, None, {})
    finally:
        conn.execute("RESET ROLE")
        conn.execute("RESET pgfeed.viewer_id")
