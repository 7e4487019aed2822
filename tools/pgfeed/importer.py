"""``pgfeed import``: load posts, follows or interactions from a CSV file.

The file is streamed with COPY into a temporary staging table of text columns;
SQL then checks every row at once (``feed._import_problem``) and, when all are
good, inserts them (``feed._import_apply``), all in ONE transaction: a bad row
anywhere means nothing is imported. After interactions the derived state is
rebuilt from the log (``feed._rebuild_derived_state``), so counters, trending
scores and viewer signals equal what the write functions would have produced.

The first line names the columns, in any order; optional columns may be left
out, unknown ones are refused. Empty values count as missing.

Importing the same file again changes nothing (docs/cli.md, "pgfeed import"):
- posts are upserted by ``post_id``: a new id is inserted, a known one gets the
  file's values for the columns the file has (an empty value keeps the stored
  one), and an identical row is left alone;
- follows already present are skipped;
- an interaction identical to one already in the log (user, post, action,
  amount, seconds, watch ratio and ``created_at``) counts as imported before and
  is skipped, as many times as the log holds it;
- an interaction without ``created_at`` (stamped with the import time) is known
  by its *import key*: a running SHA-256 over the file's header and every row up
  to and including it (``import_keys``). The keys of the rows imported are kept
  in feed.import_keys; a row whose key is there is skipped. So the same file
  again, or the file with rows appended at its end, adds only the new rows; a
  row of a different file, or one below an edit, is new.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

KINDS = ("interactions", "posts", "follows")
STAGING = "pgfeed_import"  # pg_temp.pgfeed_import: the name feed._import_problem/_apply read
CHUNK = 1 << 20
BIGINT_RANGE = "-9223372036854775808, 9223372036854775807"

# posts: how each column of the file becomes a value of feed.posts (an update of a known post)
POST_VALUES = {
    "author_id": "nullif(btrim(u.author_id), '')::bigint",
    "category": "nullif(btrim(u.category), '')",
    "post_type": "nullif(btrim(u.post_type), '')",
    "created_at": "nullif(btrim(u.created_at), '')::timestamptz",
    "collective_id": "nullif(btrim(u.collective_id), '')::bigint",
    "visibility": "nullif(btrim(u.visibility), '')",
    "is_deleted": "nullif(btrim(u.is_deleted), '')::boolean",
    "media_ready": "nullif(btrim(u.media_ready), '')::boolean",
    "duration_ms": "nullif(btrim(u.duration_ms), '')::integer",
    "embedding": "nullif(btrim(u.embedding), '')::{vector}.vector",
    # an array literal ({jazz,"free jazz"}); normalized as the trigger stores it, so a re-import changes nothing
    "tags": "feed._normalize_tags(nullif(btrim(u.tags), '')::text[])",
}


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


def import_csv(dsn: str, kind: str, path: str | Path, progress=None) -> dict:
    """Import the CSV file at ``path`` as ``kind`` (interactions, posts or
    follows) into the database at ``dsn``. Returns counts: rows (of the file),
    inserted, updated (posts whose values changed), skipped (rows already there:
    identical posts, follows present, interactions already in the log); for
    interactions also the rebuild's. Raises ImportFailed, with the line of the
    first bad row, and imports nothing, when any row is bad.

    ``progress(stage, done, total)`` is called as the file is read (bytes) and
    at each later stage."""
    if kind not in KINDS:
        raise ImportFailed(f"kind: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    path = Path(path)
    names = _header(path)
    report = progress or (lambda stage, done, total: None)
    size = path.stat().st_size

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
            done = 0
            report(f"reading {path.name}", 0, size)
            try:
                with conn.cursor() as cur, cur.copy(copy_sql) as copy, path.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        copy.write(chunk)
                        done += len(chunk)
                        report(f"reading {path.name}", done, size)
            except psycopg.Error as exc:
                raise _copy_failure(exc, path) from None
            rows = conn.execute(pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(STAGING))).fetchone()[0]
            if kind == "interactions":
                _stage_import_keys(conn, path, names, rows)

            report("checking rows", 0, 1)
            known_posts = _set_aside_known_posts(conn, path) if kind == "posts" else 0
            problem = conn.execute("SELECT record, problem FROM feed._import_problem(%s)", [kind]).fetchone()
            if problem:
                record, message = problem
                raise ImportFailed(message, _physical_line(path, record), path)
            updated = _update_known_posts(conn, names) if known_posts else 0
            if kind == "interactions":
                _drop_imported_interactions(conn)
            report("checking rows", 1, 1)

            left = conn.execute(pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(STAGING))).fetchone()[0]
            result: dict = {}
            if left:
                report("writing" + (" and rebuilding counters" if kind == "interactions" else ""), 0, 1)
                result = conn.execute("SELECT feed._import_apply(%s)", [kind]).fetchone()[0]
                report("writing" + (" and rebuilding counters" if kind == "interactions" else ""), 1, 1)
            inserted = result.get("inserted", 0)
    result.update(kind=kind, rows=rows, inserted=inserted, updated=updated, skipped=rows - inserted - updated,
                  path=str(path))
    return result


def _set_aside_known_posts(conn, path: Path) -> int:
    """Posts whose post_id is already in feed.posts are updates, not inserts.

    They move out of the staging table (into pgfeed_import_known) after being
    checked by the same rules as new posts: for that check their ids are
    swapped for unused ones, so feed._import_problem does not call them
    duplicates of themselves. Returns how many there are."""
    known = conn.execute(f"""
        CREATE TEMP TABLE pgfeed_import_known ON COMMIT DROP AS
        SELECT s.record, s.post_id::bigint AS post_id,
               row_number() OVER (PARTITION BY s.post_id::bigint ORDER BY s.record) AS occurrence,
               row_number() OVER (ORDER BY s.record) AS n
        FROM (SELECT i.record, CASE WHEN feed._is_integer_literal(nullif(btrim(i.post_id), ''), {BIGINT_RANGE})
                                    THEN btrim(i.post_id) END AS post_id
              FROM pg_temp.pgfeed_import i) s
        WHERE s.post_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM feed.posts p WHERE p.post_id = s.post_id::bigint)""").rowcount
    if not known:
        return 0
    duplicate = conn.execute("SELECT record, post_id FROM pg_temp.pgfeed_import_known WHERE occurrence > 1"
                             " ORDER BY record LIMIT 1").fetchone()
    if duplicate:
        raise ImportFailed(f"post_id: post {duplicate[1]} appears more than once in the file",
                           _physical_line(path, duplicate[0]), path)
    conn.execute(f"""
        UPDATE pg_temp.pgfeed_import s
        SET post_id = ((SELECT least(min(p.post_id),
                                     (SELECT min(CASE WHEN feed._is_integer_literal(nullif(btrim(i.post_id), ''),
                                                                                    {BIGINT_RANGE})
                                                      THEN btrim(i.post_id)::bigint END)
                                      FROM pg_temp.pgfeed_import i))
                        FROM feed.posts p) - k.n)::text
        FROM pg_temp.pgfeed_import_known k
        WHERE s.record = k.record""")
    return known


def _update_known_posts(conn, names: list[str]) -> int:
    """Give the known posts the file's values (an empty value keeps the stored
    one); returns how many posts changed."""
    from . import install

    conn.execute("UPDATE pg_temp.pgfeed_import s SET post_id = k.post_id::text"
                 " FROM pg_temp.pgfeed_import_known k WHERE s.record = k.record")
    conn.execute("CREATE TEMP TABLE pgfeed_import_updates ON COMMIT DROP AS SELECT s.* FROM pg_temp.pgfeed_import s"
                 " JOIN pg_temp.pgfeed_import_known k USING (record)")
    conn.execute("DELETE FROM pg_temp.pgfeed_import s USING pg_temp.pgfeed_import_known k"
                 " WHERE s.record = k.record")
    columns = [name for name in names if name in POST_VALUES]
    if not columns:
        return 0
    vector = pgsql.Identifier(install.vector_schema(conn)).as_string(conn)
    values = {name: f"coalesce({POST_VALUES[name].format(vector=vector)}, p.{name})" for name in columns}
    assignments = ", ".join(f"{name} = {value}" for name, value in values.items())
    differs = " OR ".join(f"p.{name} IS DISTINCT FROM {value}" for name, value in values.items())
    return conn.execute(f"UPDATE feed.posts p SET {assignments} FROM pg_temp.pgfeed_import_updates u"
                        f" WHERE p.post_id = btrim(u.post_id)::bigint AND ({differs})").rowcount


def import_keys(path: Path, names: list[str]):
    """(record, key) of every data row without created_at: the key is a running
    SHA-256 over the header and each row up to and including that one, so it
    names the row by its content and everything above it in the file."""
    when = names.index("created_at") if "created_at" in names else None
    chain = hashlib.sha256(b"pgfeed import interactions\0" + json.dumps(names).encode()).digest()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader, None)  # the header
        for record, row in enumerate(reader, start=1):
            chain = hashlib.sha256(chain + json.dumps(row).encode()).digest()
            if when is None or when >= len(row) or not row[when].strip(" "):
                yield record, chain


def _stage_import_keys(conn, path: Path, names: list[str], rows: int) -> None:
    """pg_temp.pgfeed_import_keys (record, import_key): the keys of the rows
    without created_at (feed._import_apply records those it imports)."""
    conn.execute("CREATE TEMP TABLE pgfeed_import_keys (record bigint PRIMARY KEY, import_key bytea NOT NULL)"
                 " ON COMMIT DROP")
    last = 0
    with conn.cursor() as cur, cur.copy("COPY pg_temp.pgfeed_import_keys (record, import_key) FROM STDIN") as copy:
        for record, key in import_keys(path, names):
            copy.write_row((record, key))
            last = max(last, record)
    if last > rows:
        raise ImportFailed(f"the file has {last} data rows by Python's CSV reader but {rows} by COPY's; "
                           "check its quoting", None, path)


def _drop_imported_interactions(conn) -> int:
    """Leave out the rows the log already holds (imported before): a row equal
    to a logged interaction in every column, created_at included, as many times
    as the log holds it; a row without created_at whose import key is in
    feed.import_keys (imported before, from this file or its beginning)."""
    known = conn.execute("""
        DELETE FROM pg_temp.pgfeed_import s
        USING pg_temp.pgfeed_import_keys k, feed.import_keys f
        WHERE k.record = s.record AND f.import_key = k.import_key""").rowcount
    return known + conn.execute("""
        WITH staged AS (
            SELECT s.record, btrim(s.user_id)::bigint AS user_id, btrim(s.post_id)::bigint AS post_id,
                   btrim(s.action) AS action,
                   coalesce(nullif(btrim(s.value_amount), '')::numeric, 0)::numeric(12,2) AS value_amount,
                   coalesce(nullif(btrim(s.time_spent_seconds), '')::integer, 0) AS time_spent_seconds,
                   nullif(btrim(s.created_at), '')::timestamptz AS created_at,
                   nullif(btrim(s.watch_ratio), '')::numeric::double precision AS watch_ratio
            FROM pg_temp.pgfeed_import s
            WHERE nullif(btrim(s.created_at), '') IS NOT NULL),
        numbered AS (
            SELECT st.*, row_number() OVER (PARTITION BY user_id, post_id, action, value_amount, time_spent_seconds,
                                                         created_at, watch_ratio ORDER BY record) AS occurrence
            FROM staged st),
        already AS (
            SELECT n.record FROM numbered n
            WHERE n.occurrence <= (SELECT count(*) FROM feed.interactions i
                                   WHERE i.user_id = n.user_id AND i.created_at = n.created_at
                                     AND i.post_id = n.post_id AND i.action = n.action
                                     AND i.value_amount = n.value_amount
                                     AND i.time_spent_seconds = n.time_spent_seconds
                                     AND i.watch_ratio IS NOT DISTINCT FROM n.watch_ratio))
        DELETE FROM pg_temp.pgfeed_import s USING already a WHERE s.record = a.record""").rowcount


def _copy_failure(exc: psycopg.Error, path: Path) -> ImportFailed:
    """A row COPY itself refused (wrong number of columns, bad quoting, bad
    encoding): its line, from the server's context 'COPY ..., line N' (N counts
    physical lines, the header included)."""
    message = (exc.diag.message_primary or str(exc)).strip()
    match = re.search(r"\bline (\d+)", exc.diag.context or "")
    return ImportFailed(f"malformed CSV: {message}", int(match.group(1)) if match else None, path)
