"""Repair what differs from the installed shape (sql/manifest.json): `pgfeed migrate`'s last step.

What is repaired, with the definitions the manifest recorded from a fresh install:
- missing indexes are created; invalid ones (a crash during a build, a failed
  CREATE INDEX CONCURRENTLY) are rebuilt with REINDEX; an index whose
  definition differs is dropped and created again;
- missing constraints are added (primary keys and unique ones first, foreign
  keys last); one whose definition differs is dropped and added again; one
  left NOT VALID is validated;
- a missing column is added; a column default, NOT NULL or storage that
  differs is set back;
- grants are set back: missing ones granted; grants beyond the manifest's
  revoked when they go to PUBLIC or to one of pgfeed's own roles (pgfeed_*);
- row-level-security flags are set back;
- a function, trigger or policy that is missing or differs, an owner or the
  schema's default privileges that differ: the function files are applied
  again (and what still differs afterwards is reported).

Nothing is dropped that pgfeed did not install (a stray column, index or
function, a grant to a host role): those are left and reported. Each repair
runs in its own savepoint, so one that fails (a NOT NULL over rows holding
nulls, a unique index over duplicates) is reported and the others still
happen. A database that matches the manifest gets no statement at all: a
second migrate is a no-op. The statements run under the search_path of
pgfeed's DDL (pg_catalog, pg_temp), pgvector named by its schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql as pgsql

from . import install
from . import shape as shapes

CONSTRAINT_ORDER = {"p": 0, "u": 1, "x": 2, "c": 3, "t": 4, "f": 5}
PGFEED_ROLE_PREFIX = "pgfeed_"
REAPPLY_FUNCTIONS = "re-apply sql/functions"
STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}


@dataclass
class Repair:
    what: str   # for people: "created missing index feed.posts_trending_idx"
    sql: str    # the statement, or REAPPLY_FUNCTIONS


def _ident(conn, *parts: str) -> str:
    return pgsql.Identifier(*parts).as_string(conn)


def _qualified_table(conn, table: str) -> str:
    return _ident(conn, "feed", table)


def _grant_target(conn, category: str, name: str, kind: str | None) -> tuple[str, str, str | None]:
    """(object clause for GRANT/REVOKE, catalog query for the owner's name, column list or None)."""
    if category == "schema":
        return "SCHEMA feed", "SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace" \
                              " WHERE nspname = 'feed'", None
    if category == "functions":
        signature = install.render(name, install.vector_schema(conn, default="public"))
        return (f"ROUTINE {signature}",
                f"SELECT pg_catalog.pg_get_userbyid(proowner) FROM pg_catalog.pg_proc"
                f" WHERE oid = {pgsql.Literal(signature).as_string(conn)}::regprocedure", None)
    if category == "columns":
        table, _, column = name.partition(".")
        return (f"TABLE {_qualified_table(conn, table)}",
                f"SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class"
                f" WHERE oid = {pgsql.Literal('feed.' + _ident(conn, table)).as_string(conn)}::regclass",
                _ident(conn, column))
    keyword = "SEQUENCE" if kind == "S" else "TABLE"
    return (f"{keyword} {_qualified_table(conn, name)}",
            f"SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class"
            f" WHERE oid = {pgsql.Literal('feed.' + _ident(conn, name)).as_string(conn)}::regclass", None)


def _grant_repairs(conn, difference: shapes.Difference) -> tuple[list[Repair], list[str]]:
    expected = set((difference.expected or {}).get("grants", []))
    actual = set((difference.actual or {}).get("grants", []))
    kind = (difference.expected or {}).get("kind")
    target, owner_query, column = _grant_target(conn, difference.category, difference.name, kind)
    owner = None
    repairs, left = [], []
    if difference.category in ("schema", "functions"):
        label = f"{shapes.CATEGORIES[difference.category]} {difference.name}"
    else:
        label = f"{shapes.CATEGORIES[difference.category]} feed.{difference.name}"
    for item, grant in [(i, True) for i in sorted(expected - actual)] + [(i, False) for i in sorted(actual - expected)]:
        grantee, _, privilege = item.rpartition(":")
        grantable = privilege.endswith("*")
        privilege = privilege.rstrip("*")
        if grantee == "<owner>":
            if owner is None:
                row = conn.execute(owner_query).fetchone()
                owner = row[0] if row else None
            if owner is None:
                continue
            role = _ident(conn, owner)
        elif grantee == "PUBLIC":
            role = "PUBLIC"
        else:
            role = _ident(conn, grantee)
        privilege_sql = f"{privilege} ({column})" if column else privilege
        if grant:
            option = " WITH GRANT OPTION" if grantable else ""
            repairs.append(Repair(f"granted {privilege} on {label} to {grantee}",
                                  f"GRANT {privilege_sql} ON {target} TO {role}{option}"))
        elif grantee in ("PUBLIC", "<owner>") or grantee.startswith(PGFEED_ROLE_PREFIX):
            if grantable and item.replace("*", "") in {e.replace("*", "") for e in expected}:
                repairs.append(Repair(f"revoked GRANT OPTION for {privilege} on {label} from {grantee}",
                                      f"REVOKE GRANT OPTION FOR {privilege_sql} ON {target} FROM {role}"))
            else:
                repairs.append(Repair(f"revoked {privilege} on {label} from {grantee}",
                                      f"REVOKE {privilege_sql} ON {target} FROM {role}"))
        else:
            left.append(f"{label}: {privilege} granted to {grantee} (a host role: left as it is)")
    return repairs, left


def _column_repairs(conn, difference: shapes.Difference, embedding_dim: int | None) -> list[Repair]:
    table, _, column = difference.name.partition(".")
    target = f"ALTER TABLE {_qualified_table(conn, table)}"
    col = _ident(conn, column)
    e, a = difference.expected, difference.actual
    label = f"feed.{difference.name}"
    if difference.kind == "missing":
        if e["identity"] or e["generated"]:
            return []
        type_ = e["type"]
        if embedding_dim and re.fullmatch(r"(@extschema:vector@\.)?vector\(\d+\)", type_):
            type_ = re.sub(r"\(\d+\)$", f"({embedding_dim})", type_)
        clause = f"{target} ADD COLUMN {col} {type_}"
        if e["default"] is not None:
            clause += f" DEFAULT {e['default']}"
        if e["not_null"]:
            clause += " NOT NULL"
        return [Repair(f"added missing column {label}", clause)]
    repairs = []
    if e["default"] != a["default"] and not e["identity"] and not e["generated"]:
        if e["default"] is None:
            repairs.append(Repair(f"dropped the default of {label}", f"{target} ALTER COLUMN {col} DROP DEFAULT"))
        else:
            repairs.append(Repair(f"set the default of {label} back to {e['default']}",
                                  f"{target} ALTER COLUMN {col} SET DEFAULT {e['default']}"))
    if e["not_null"] != a["not_null"]:
        verb = "SET" if e["not_null"] else "DROP"
        repairs.append(Repair(f"{verb.lower()} NOT NULL on {label}", f"{target} ALTER COLUMN {col} {verb} NOT NULL"))
    if e["storage"] != a["storage"] and e["storage"] in STORAGE and e["type"] == a["type"]:
        repairs.append(Repair(f"set the storage of {label} back to {STORAGE[e['storage']]}",
                              f"{target} ALTER COLUMN {col} SET STORAGE {STORAGE[e['storage']]}"))
    return repairs


def plan(conn: psycopg.Connection, manifest: dict, embedding_dim: int | None = None,
         differences: list[shapes.Difference] | None = None) -> tuple[list[Repair], list[str]]:
    """(the repairs to run, in order; what differs and will not be repaired)."""
    if differences is None:
        differences = shapes.compare(manifest["shape"], shapes.read_shape(conn), embedding_dim)
    columns, constraints, indexes, security, grants, left = [], [], [], [], [], []
    reapply: list[str] = []
    for d in differences:
        label = str(d)
        if d.kind == "extra":
            if d.category != "schema":
                left.append(label)
            continue
        if d in shapes.grant_differences([d]):
            repairs, kept = _grant_repairs(conn, d)
            grants.extend(repairs)
            left.extend(kept)
            if "missing grants" in d.detail:
                reapply.append(label)  # the function files grant (and may create the roles granted to)
            # grants and another field can differ at once: the other field is a line of its own
            continue
        if d.category == "columns":
            repairs = _column_repairs(conn, d, embedding_dim)
            columns.extend(repairs)
            if not repairs:
                left.append(label)
        elif d.category == "constraints":
            e = d.expected
            table = _qualified_table(conn, e["table"])
            name = _ident(conn, e["name"])
            if d.kind == "differs" and d.actual["definition"] == e["definition"] and not d.actual["validated"]:
                constraints.append((CONSTRAINT_ORDER.get(e["type"], 9),
                                    Repair(f"validated constraint {e['name']} on feed.{e['table']}",
                                           f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")))
                continue
            if d.kind == "differs":
                constraints.append((-1, Repair(f"dropped constraint {e['name']} on feed.{e['table']} (it differed)",
                                               f"ALTER TABLE {table} DROP CONSTRAINT {name}")))
            constraints.append((CONSTRAINT_ORDER.get(e["type"], 9),
                                Repair(f"{'re' if d.kind == 'differs' else ''}created constraint {e['name']}"
                                       f" on feed.{e['table']}",
                                       f"ALTER TABLE {table} ADD CONSTRAINT {name} {e['definition']}")))
        elif d.category == "indexes":
            e = d.expected
            index = _ident(conn, "feed", d.name)
            if d.kind == "invalid":
                indexes.append(Repair(f"rebuilt invalid index feed.{d.name}", f"REINDEX INDEX {index}"))
            elif e["constraint"]:
                if d.kind != "missing":
                    left.append(label)  # the constraint's own repair recreates a missing one
            elif d.kind == "missing":
                indexes.append(Repair(f"created missing index feed.{d.name}", e["definition"]))
            else:
                indexes.append(Repair(f"dropped index feed.{d.name} (it differed)", f"DROP INDEX {index}"))
                indexes.append(Repair(f"recreated index feed.{d.name}", e["definition"]))
        elif d.category == "relations" and d.kind == "differs" and "row level security" in d.detail:
            table = _qualified_table(conn, d.name)
            e, a = d.expected, d.actual
            if e["row_security"] != a["row_security"]:
                verb = "ENABLE" if e["row_security"] else "DISABLE"
                security.append(Repair(f"{verb.lower()}d row level security on feed.{d.name}",
                                       f"ALTER TABLE {table} {verb} ROW LEVEL SECURITY"))
            if e["force_row_security"] != a["force_row_security"]:
                verb = "FORCE" if e["force_row_security"] else "NO FORCE"
                security.append(Repair(f"set {verb} ROW LEVEL SECURITY on feed.{d.name}",
                                       f"ALTER TABLE {table} {verb} ROW LEVEL SECURITY"))
        elif d.category in ("functions", "triggers", "policies", "types", "schema") or (
                d.category == "relations" and d.kind == "differs" and "owner" in d.detail):
            # the function files create these (and may set owners and default privileges)
            reapply.append(label)
        else:
            left.append(label)
    ordered = [r for _, r in sorted(constraints, key=lambda item: item[0])]
    repairs = columns + ordered + indexes + security
    if reapply:
        repairs.append(Repair(f"applied the function files again ({'; '.join(reapply)})", REAPPLY_FUNCTIONS))
    # grants last: re-applied function files may grant or revoke themselves
    repairs += grants
    # the manifest names pgvector's schema by a token: this database's schema, quoted
    vector_schema = install.vector_schema(conn, default="public")
    repairs = [r if r.sql == REAPPLY_FUNCTIONS else Repair(r.what, install.render(r.sql, vector_schema))
               for r in repairs]
    return repairs, left
