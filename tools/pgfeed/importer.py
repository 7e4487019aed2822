"""``pgfeed import``: load posts, follows or interactions from a CSV file.

The file is streamed with COPY into a temporary staging table of text columns;
SQL then checks every row at once (``feed._import_problem``) and, when all are
good, inserts them (``feed._import_apply``), all in ONE transaction: a bad row
anywhere means nothing is imported. After interactions the derived state is
rebuilt from the log (``feed._rebuild_derived_state``), so counters, trending
scores and viewer signals equal what the write functions would have produced.

The first line names the columns, in any order; optional columns may be left
out, unknown ones are refused. Empty values count as missing.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

KINDS = ("interactions", "posts", "follows")
STAGING = "pgfeed_import"  # pg_temp.pgfeed_import: the name feed._import_problem/_apply read
CHUNK = 1 << 20


class ImportFailed(Exception):
    """The file cannot be imported; nothing was. ``line`` is the CSV line (1 is
    the header) of the first bad row, or None when the problem is not a row's."""

    def __init__(self, message: str, line: int | None = None, path: str | Path | None = None):
        self.message = message
        self.line = line
        self.path = str(path) if path is not None else None
        where = ":".join(str(p) for p in (self.path, line) if p is not None)
        super().__init__(f"{where}: {message}" if where else message)


def _physical_line(path: Path, record: int) -> int:
    """The line on which data row ``record`` (1-based) starts. Equal to
    record + 1 unless earlier quoted values span several lines."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        last = 0
        for index, _ in enumerate(reader):
            if index == record:  # the header is row 0
                return last + 1
            last = reader.line_num
    return last + 1


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            row = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {path}") from None
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"the header is not UTF-8: {exc}", 1, path) from None
    if not row or not any(name.strip() for name in row):
        raise ImportFailed("the file is empty; the first line must name the columns", 1, path)
    return [name.strip() for name in row]


def import_csv(dsn: str, kind: str, path: str | Path) -> dict:
    """Import the CSV file at ``path`` as ``kind`` (interactions, posts or
    follows) into the database at ``dsn``. Returns counts (rows, inserted,
    skipped: follows already present; for interactions also the rebuild's).
    Raises ImportFailed, with the line of the first bad row, and imports
    nothing, when any row is bad."""
    if kind not in KINDS:
        raise ImportFailed(f"kind: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(path)
    names = _header(path)

    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            known = conn.execute("SELECT column_name, required FROM feed._import_columns(%s)", [kind]).fetchall()
            allowed = [name for name, _ in known]
            for name in names:
                if name not in allowed:
                    raise ImportFailed(f"unknown column {name!r}; {kind} files have the columns "
                                       f"{', '.join(allowed)}", 1, path)
                if names.count(name) > 1:
                    raise ImportFailed(f"column {name!r} appears twice in the header", 1, path)
            missing = [name for name, required in known if required and name not in names]
            if missing:
                raise ImportFailed(f"missing required column(s) {', '.join(missing)}", 1, path)

            conn.execute(pgsql.SQL(
                "CREATE TEMP TABLE {} (record bigint GENERATED ALWAYS AS IDENTITY, {}) ON COMMIT DROP").format(
                pgsql.Identifier(STAGING),
                pgsql.SQL(", ").join(pgsql.SQL("{} text").format(pgsql.Identifier(n)) for n in allowed)))
            copy_sql = pgsql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
                pgsql.Identifier(STAGING), pgsql.SQL(", ").join(pgsql.Identifier(n) for n in names))
            try:
                with conn.cursor() as cur, cur.copy(copy_sql) as copy, path.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        copy.write(chunk)
            except psycopg.Error as exc:
                raise _copy_failure(exc, path) from None

            problem = conn.execute("SELECT record, problem FROM feed._import_problem(%s)", [kind]).fetchone()
            if problem:
                record, message = problem
                raise ImportFailed(message, _physical_line(path, record), path)
            result = conn.execute("SELECT feed._import_apply(%s)", [kind]).fetchone()[0]
    result["path"] = str(path)
    return result


def _copy_failure(exc: psycopg.Error, path: Path) -> ImportFailed:
    """A row COPY itself refused (wrong number of columns, bad quoting, bad
    encoding): its line, from the server's context 'COPY ..., line N' (N counts
    physical lines, the header included)."""
    message = (exc.diag.message_primary or str(exc)).strip()
    match = re.search(r"\bline (\d+)", exc.diag.context or "")
    return ImportFailed(f"malformed CSV: {message}", int(match.group(1)) if match else None, path)
