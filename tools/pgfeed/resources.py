"""Where the SQL and alembic scripts are: inside the wheel, or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    packaged = _PACKAGE_DIR / name
    if packaged.exists():
        return packaged
    # a source checkout or an editable install: tools/pgfeed -> repository root
    checkout = _PACKAGE_DIR.parent.parent / name
    if checkout.exists():
        return checkout
    raise FileNotFoundError(f"pgfeed installation is incomplete: {name!r} not found near {_PACKAGE_DIR}")


def sql_dir() -> Path:
    return _find("sql")


def alembic_dir() -> Path:
    return _find("alembic")


def alembic_ini() -> Path:
    return _find("alembic.ini")
