"""The installed shape of schema feed: read it, compare it, and keep the manifest of it.

The *shape* is what a fresh ``pgfeed migrate`` creates, read back from the
catalog and normalized into a JSON-friendly dict: relations (with row-level
security flags, options and grants), columns (type, nullability, default,
storage, column grants), constraints and indexes (with the definitions that
recreate them, and whether each index is valid and ready), functions (a hash
of everything that defines each one, and its grants), triggers, policies,
types, the schema's grants and the extensions.

Normalization makes the shape independent of where it was read:
- the schema pgvector lives in is read away: the catalog is read under the
  search_path pgfeed's DDL runs with (``pg_catalog, pg_temp``), so it
  qualifies pgvector's types and operator classes, and that qualifier (as in
  function bodies and SET search_path) becomes ``@extschema:vector@``, which
  repairs render back (``install.render``);
- the role that owns an object appears as ``<owner>`` in its grants (the
  installing role differs per installation), PUBLIC as ``PUBLIC``; a grant's
  grantor is dropped; an owner is recorded by name when it is one of
  pgfeed's own roles (``pgfeed_*``), else as ``<installer>``;
- the embedding dimension (``vector(N)`` columns) is compared against the
  database's own dimension, chosen at install (``--embedding-dim``).

The expected shape is never written by hand: ``sql/manifest.json`` is
generated from a fresh install into a scratch database with

    python -m pgfeed.shape --write            # embedded server ($PGFEED_DATA_DIR)
    python -m pgfeed.shape --write --dsn postgresql://me@localhost/postgres

and tests/test_doctor.py fails, naming that command, whenever a fresh install
differs from it. The manifest also records a digest of the SQL it was
generated from (``sources_sha256``): a manifest older than the SQL is refused
by ``migrate``'s repair step and reported by ``doctor``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import pq
from psycopg import sql as pgsql

from . import resources

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
VECTOR_TOKEN = "@extschema:vector@"
REGENERATE_COMMAND = "python -m pgfeed.shape --write"

# what each category is called in messages, and the order doctor reports them in
CATEGORIES = {
    "schema": "schema",
    "extensions": "extension",
    "relations": "table",
    "columns": "column",
    "constraints": "constraint",
    "indexes": "index",
    "types": "type",
    "functions": "function",
    "triggers": "trigger",
    "policies": "policy",
}


# ---------------------------------------------------------------------------
# reading

def _vector_schema(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT n.nspname FROM pg_catalog.pg_extension e"
        " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'").fetchone()
    return row[0] if row else None


def _grants(rows) -> dict[str, list[str]]:
    """{object: sorted ["grantee:PRIVILEGE", ...]} from (object, grantee, privilege, grantable) rows."""
    out: dict[str, list[str]] = {}
    for name, grantee, privilege, grantable in rows:
        if grantee == "<owner>" and privilege == "MAINTAIN":
            # PostgreSQL 17 added MAINTAIN to an owner's default privileges; older servers
            # have no such privilege, and the same install must match the manifest on both
            continue
        out.setdefault(name, []).append(f"{grantee}:{privilege}{'*' if grantable else ''}")
    return {name: sorted(items) for name, items in out.items()}


# an owner, normalized: one of pgfeed's own roles by name, any other role (the one that
# migrated: it differs per installation) as <installer>
_OWNER = "CASE WHEN pg_catalog.pg_get_userbyid({owner}) LIKE 'pgfeed\\_%' THEN pg_catalog.pg_get_userbyid({owner})" \
         " ELSE '<installer>' END"

# the grantee of an exploded acl item, normalized (PUBLIC, <owner>, or the role's name)
_GRANTEE = ("CASE WHEN a.grantee = 0 THEN 'PUBLIC' WHEN a.grantee = {owner} THEN '<owner>'"
            " ELSE pg_catalog.pg_get_userbyid(a.grantee) END")


def _search_path_value(config: list[str] | None, vector_schema: str | None) -> list[str]:
    """A function's SET options, with the pgvector schema in search_path replaced by the token.
    plan_cache_mode is left out: on a Citus cluster migrate gives every entry
    point custom plans (pgfeed.distribution), and either way it is no part of
    what a function does."""
    result = []
    for item in config or []:
        name, _, value = item.partition("=")
        if name == "plan_cache_mode":
            continue
        if name == "search_path" and vector_schema:
            parts = [p.strip() for p in value.split(",")]
            quoted = '"' + vector_schema.replace('"', '""') + '"'
            parts = [VECTOR_TOKEN if p in (vector_schema, quoted) else p for p in parts]
            value = ", ".join(parts)
        result.append(f"{name}={value}")
    return result


def _read(conn: psycopg.Connection, vector_schema: str | None, normalize) -> dict:
    q = lambda text, params=None: conn.execute(text, params).fetchall()  # noqa: E731
    shape: dict = {}

    schema = q("SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'feed'")
    if not schema:
        return {category: {} for category in CATEGORIES}
    schema_grants = _grants(q(
        "SELECT 'feed', " + _GRANTEE.format(owner="n.nspowner") + ", a.privilege_type, a.is_grantable"
        " FROM pg_catalog.pg_namespace n,"
        " LATERAL pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a"
        " WHERE n.nspname = 'feed'"))
    owner = q("SELECT " + _OWNER.format(owner="n.nspowner") + " FROM pg_catalog.pg_namespace n"
              " WHERE n.nspname = 'feed'")[0][0]
    default_privileges = sorted(
        f"{objtype}:{grantee}:{privilege}{'*' if grantable else ''}"
        for objtype, grantee, privilege, grantable in q(
            "SELECT d.defaclobjtype::text, CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
            " WHEN a.grantee = d.defaclrole THEN '<owner>' ELSE pg_catalog.pg_get_userbyid(a.grantee) END,"
            " a.privilege_type, a.is_grantable FROM pg_catalog.pg_default_acl d,"
            " LATERAL pg_catalog.aclexplode(d.defaclacl) a WHERE d.defaclnamespace = 'feed'::regnamespace"))
    shape["schema"] = {"feed": {"owner": owner, "grants": schema_grants.get("feed", []),
                                "default_privileges": default_privileges}}

    shape["extensions"] = {name: {"version": version} for name, version in q(
        "SELECT extname, extversion FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql' ORDER BY 1")}

    relations = {}
    rel_grants = _grants(q(
        "SELECT c.relname, " + _GRANTEE.format(owner="c.relowner") + ", a.privilege_type, a.is_grantable"
        " FROM pg_catalog.pg_class c,"
        " LATERAL pg_catalog.aclexplode(coalesce(c.relacl, pg_catalog.acldefault("
        "   CASE c.relkind WHEN 'S' THEN 's'::\"char\" ELSE 'r'::\"char\" END, c.relowner))) a"
        " WHERE c.relnamespace = 'feed'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"))
    for name, kind, owner, rls, force, options, view in q(
            "SELECT c.relname, c.relkind::text, " + _OWNER.format(owner="c.relowner") + ","
            " c.relrowsecurity, c.relforcerowsecurity,"
            " coalesce(c.reloptions, '{}'),"
            " CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END"
            " FROM pg_catalog.pg_class c WHERE c.relnamespace = 'feed'::regnamespace"
            " AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') ORDER BY 1"):
        entry = {"kind": kind, "owner": owner, "row_security": rls, "force_row_security": force,
                 "options": sorted(options), "grants": rel_grants.get(name, [])}
        if view is not None:
            entry["definition"] = view
        relations[name] = entry
    shape["relations"] = relations

    col_grants = _grants(q(
        "SELECT c.relname || '.' || a2.attname, " + _GRANTEE.format(owner="c.relowner")
        + ", a.privilege_type, a.is_grantable"
        " FROM pg_catalog.pg_attribute a2 JOIN pg_catalog.pg_class c ON c.oid = a2.attrelid,"
        " LATERAL pg_catalog.aclexplode(a2.attacl) a"
        " WHERE c.relnamespace = 'feed'::regnamespace AND a2.attacl IS NOT NULL AND a2.attnum > 0"
        " AND NOT a2.attisdropped"))
    columns = {}
    for table, column, type_, not_null, default, identity, generated, storage in q(
            "SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,"
            " a.attstorage::text"
            " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE c.relnamespace = 'feed'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2"):
        key = f"{table}.{column}"
        columns[key] = {"type": type_, "not_null": not_null, "default": default,
                        "identity": identity, "generated": generated, "storage": storage,
                        "grants": col_grants.get(key, [])}
    shape["columns"] = columns

    shape["constraints"] = {
        f"{table}.{name}": {"table": table, "name": name, "type": contype, "definition": definition,
                            "validated": validated}
        for table, name, contype, definition, validated in q(
            "SELECT c.relname, k.conname, k.contype::text, pg_catalog.pg_get_constraintdef(k.oid),"
            " k.convalidated FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid"
            " WHERE k.connamespace = 'feed'::regnamespace AND k.contype <> 'n'"  # NOT NULL: see columns
            " ORDER BY 1, 2")}

    shape["indexes"] = {
        name: {"table": table, "definition": definition, "constraint": constraint, "valid": valid}
        for name, table, definition, constraint, valid in q(
            "SELECT i.relname, t.relname, pg_catalog.pg_get_indexdef(x.indexrelid),"
            " (SELECT k.conname FROM pg_catalog.pg_constraint k WHERE k.conindid = x.indexrelid"
            "  AND k.conrelid = x.indrelid AND k.contype IN ('p', 'u', 'x') LIMIT 1),"
            " x.indisvalid AND x.indisready AND x.indislive"
            " FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_catalog.pg_class t ON t.oid = x.indrelid"
            " WHERE t.relnamespace = 'feed'::regnamespace ORDER BY 1")}

    # on a Citus node the shards' row types are in the schema, while Citus
    # hides the shards themselves from pg_class: they are not pgfeed's objects
    citus_shards = (" AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_shard s"
                    " JOIN pg_catalog.pg_class r ON r.oid = s.logicalrelid"
                    " WHERE t.typname = r.relname || '_' || s.shardid)"
                    if q("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus'") else "")
    shape["types"] = {name: {"kind": kind} for name, kind in q(
        "SELECT t.typname, t.typtype::text FROM pg_catalog.pg_type t"
        " WHERE t.typnamespace = 'feed'::regnamespace AND t.typtype IN ('c', 'd', 'e', 'r', 'm')"
        " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')"
        + citus_shards + " ORDER BY 1")}

    fn_grants = _grants(q(
        "SELECT p.oid::regprocedure::text, " + _GRANTEE.format(owner="p.proowner")
        + ", a.privilege_type, a.is_grantable FROM pg_catalog.pg_proc p,"
        " LATERAL pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) a"
        " WHERE p.pronamespace = 'feed'::regnamespace"))
    quoted = '"' + vector_schema.replace('"', '""') + '"' if vector_schema else None
    functions = {}
    for row in q(
            "SELECT p.oid::regprocedure::text, " + _OWNER.format(owner="p.proowner") + ","
            " p.prokind::text, l.lanname, p.prosrc, p.proconfig,"
            " pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),"
            " p.provolatile::text, p.proisstrict, p.prosecdef, p.proparallel::text, p.proleakproof,"
            " p.procost::float8, p.prorows::float8, p.proretset,"
            " (SELECT row(a.aggtransfn::regproc, a.aggfinalfn::regproc, a.aggcombinefn::regproc,"
            "   pg_catalog.format_type(a.aggtranstype, NULL), a.agginitval, a.aggkind)::text"
            "  FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid)"
            " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
            " WHERE p.pronamespace = 'feed'::regnamespace ORDER BY 1"):
        signature, owner, kind, language, source, config, *rest = row
        if quoted and source:
            source = source.replace(quoted, VECTOR_TOKEN)
        definition = [kind, language, source, _search_path_value(config, vector_schema),
                      *(normalize(v) if isinstance(v, str) else v for v in rest)]
        digest = hashlib.sha256(json.dumps(definition, default=str).encode()).hexdigest()
        functions[signature] = {"sha256": digest, "owner": owner, "grants": fn_grants.get(signature, [])}
    shape["functions"] = functions

    shape["triggers"] = {
        f"{table}.{name}": {"definition": definition, "enabled": enabled}
        for table, name, definition, enabled in q(
            "SELECT c.relname, t.tgname, pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled::text"
            " FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND c.relnamespace = 'feed'::regnamespace ORDER BY 1, 2")}

    shape["policies"] = {
        f"{table}.{name}": {"command": cmd, "permissive": permissive, "roles": sorted(roles),
                            "using": using, "check": check}
        for table, name, cmd, permissive, roles, using, check in q(
            "SELECT c.relname, p.polname, p.polcmd::text, p.polpermissive,"
            " ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r) END"
            "       FROM unnest(p.polroles) r),"
            " pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)"
            " FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid"
            " WHERE c.relnamespace = 'feed'::regnamespace ORDER BY 1, 2")}
    return shape


def _normalizer(vector_schema: str | None):
    """A function that replaces the pgvector schema as a qualifier ("public." or
    "\"public\".") by the token, in any text the catalog printed."""
    if not vector_schema:
        return lambda text: text
    names = ['"' + re.escape(vector_schema.replace('"', '""')) + '"']
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", vector_schema):
        names.append(re.escape(vector_schema))
    pattern = re.compile(r'(?<![\w"$.])(?:' + "|".join(names) + r")\.")
    return lambda text: pattern.sub(VECTOR_TOKEN + ".", text)


def _normalized(value, normalize):
    if isinstance(value, str):
        return normalize(value)
    if isinstance(value, dict):
        return {normalize(k): _normalized(v, normalize) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v, normalize) for v in value]
    return value


def read_shape(conn: psycopg.Connection) -> dict:
    """The normalized shape of schema feed in the database of ``conn``.

    Read under the search_path pgfeed's DDL runs with (pg_catalog, pg_temp), so
    the catalog qualifies everything outside it; pgvector's schema then becomes
    the token. Works in autocommit mode and inside an open transaction; the
    session's search_path is restored afterwards."""
    vector_schema = _vector_schema(conn)
    old = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()[0]
    conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)")
    try:
        normalize = _normalizer(vector_schema)
        return _normalized(_read(conn, vector_schema, normalize), normalize)
    finally:
        if conn.info.transaction_status != pq.TransactionStatus.INERROR:
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, false)", [old])


# ---------------------------------------------------------------------------
# the manifest

def manifest_path() -> Path:
    return resources.sql_dir() / MANIFEST_NAME


def sources_digest() -> str:
    """sha256 of every file the installed shape comes from: the schema, the
    revisions and the function files."""
    sql_dir, alembic_dir = resources.sql_dir(), resources.alembic_dir()
    files = [sql_dir / "schema" / "schema.sql", *sorted((sql_dir / "functions").glob("*.sql")),
             *sorted((alembic_dir / "versions").glob("*.sql")), *sorted((alembic_dir / "versions").glob("*.py"))]
    digest = hashlib.sha256()
    for path in files:
        # line endings normalized: a checkout with CRLF holds the same SQL
        digest.update(path.name.encode() + b"\0" + path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def load_manifest(path: Path | None = None) -> dict:
    return json.loads((path or manifest_path()).read_text())


def manifest_is_current(manifest: dict) -> bool:
    return manifest.get("sources_sha256") == sources_digest()


def build_manifest(shape: dict) -> dict:
    from . import install

    return {"format": MANIFEST_FORMAT, "revision": install.head_revision(), "sources_sha256": sources_digest(),
            "generated_by": REGENERATE_COMMAND, "shape": shape}


def write_manifest(manifest: dict, path: Path | None = None) -> Path:
    path = path or manifest_path()
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def fresh_shape(maintenance_dsn: str) -> dict:
    """The shape of a fresh install: migrate a scratch database on the server of
    ``maintenance_dsn`` (which must allow CREATE DATABASE), read it, drop it."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from . import install

    name = f"pgfeed_shape_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        params = conninfo_to_dict(maintenance_dsn)
        params["dbname"] = name
        dsn = make_conninfo(**params)
        install.migrate(dsn)
        with psycopg.connect(dsn) as conn:
            return read_shape(conn)
    finally:
        with psycopg.connect(maintenance_dsn, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


# ---------------------------------------------------------------------------
# comparing

@dataclass
class Difference:
    category: str           # a key of CATEGORIES
    name: str               # the object, e.g. "posts.created_at", "posts_trending_idx"
    kind: str               # "missing" | "extra" | "differs" | "invalid"
    detail: str             # what differs, for people
    expected: object = None
    actual: object = None

    def __str__(self) -> str:
        what = CATEGORIES[self.category]
        if self.category in ("schema", "extensions"):
            name = self.name
        elif self.category == "functions":
            name = self.name  # regprocedure text: already qualified
        elif self.category in ("constraints", "triggers", "policies"):
            table, _, obj = self.name.partition(".")
            name = f"{obj} on feed.{table}"
        else:
            name = f"feed.{self.name}"
        if self.kind == "missing":
            return f"{what} {name} is missing"
        if self.kind == "extra":
            return f"{what} {name} is not part of this version"
        if self.kind == "invalid":
            return f"{what} {name} is invalid ({self.detail})"
        return f"{what} {name}: {self.detail}"

    def as_dict(self) -> dict:
        return {"category": self.category, "name": self.name, "kind": self.kind, "detail": self.detail,
                "message": str(self)}


_VECTOR_TYPE = re.compile(r"^((?:@extschema:vector@\.)?vector)\((\d+)\)$")


def _describe(category: str, field: str, expected, actual) -> str:
    if field == "grants":
        exp, act = set(expected or []), set(actual or [])
        parts = []
        if act - exp:
            parts.append("granted beyond this version's: " + ", ".join(sorted(act - exp)))
        if exp - act:
            parts.append("missing grants: " + ", ".join(sorted(exp - act)))
        return "; ".join(parts)
    if field == "sha256":
        return "definition differs from this version's"
    if field == "default":
        return f"default is {actual if actual is not None else 'none'}, expected {expected if expected is not None else 'none'}"
    if field == "not_null":
        return "NOT NULL expected" if expected else "is NOT NULL, expected nullable"
    if field in ("row_security", "force_row_security"):
        label = "row level security" if field == "row_security" else "forced row level security"
        return f"{label} {'off' if expected is False else 'on'} expected, found {'on' if actual else 'off'}"
    if field == "definition":
        return f"definition is {actual!r}, expected {expected!r}"
    return f"{field} is {actual!r}, expected {expected!r}"


def compare(expected: dict, actual: dict, embedding_dim: int | None = None,
            categories=None) -> list[Difference]:
    """Every difference of ``actual`` from ``expected`` (both shapes).

    Extensions are not compared here: they belong to the database, not to
    pgfeed (doctor checks that pgfeed's are present, and their versions)."""
    out: list[Difference] = []
    for category in categories or [c for c in CATEGORIES if c != "extensions"]:
        exp, act = expected.get(category, {}), actual.get(category, {})
        for name in sorted(set(exp) | set(act)):
            if name not in act:
                out.append(Difference(category, name, "missing", "missing", exp[name], None))
                continue
            if name not in exp:
                out.append(Difference(category, name, "extra", "not part of this version", None, act[name]))
                continue
            e, a = dict(exp[name]), dict(act[name])
            if category == "columns" and embedding_dim:
                match = _VECTOR_TYPE.match(e.get("type") or "")
                if match:
                    e["type"] = f"{match.group(1)}({embedding_dim})"
            if category == "indexes" and not a.get("valid", True) and e.get("valid", True):
                out.append(Difference(category, name, "invalid", "not valid or not ready", e, a))
                e.pop("valid", None), a.pop("valid", None)
            for field in sorted(set(e) | set(a)):
                if e.get(field) != a.get(field):
                    out.append(Difference(category, name, "differs", _describe(category, field, e.get(field),
                                                                                  a.get(field)), e, a))
                    if field != "grants":
                        break  # one line per object; grants get their own line
    return out


def grant_differences(differences: list[Difference]) -> list[Difference]:
    return [d for d in differences if d.kind == "differs" and d.detail.startswith(("granted", "missing grants"))]


# ---------------------------------------------------------------------------
# python -m pgfeed.shape

def _maintenance_dsn(dsn: str | None) -> str:
    if dsn:
        from .database import normalize_dsn

        return normalize_dsn(dsn)
    from .database import start_embedded

    return start_embedded(tune=False).dsn("postgres")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pgfeed.shape",
        description="Generate or check sql/manifest.json, the installed shape of schema feed, "
                    "from a fresh install into a scratch database.")
    parser.add_argument("--dsn", help="a database on the server to use (it must allow CREATE DATABASE); "
                                      "default: the embedded server ($PGFEED_DATA_DIR)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write sql/manifest.json")
    action.add_argument("--check", action="store_true", help="exit 1 when sql/manifest.json is not current")
    args = parser.parse_args(argv)
    shape = fresh_shape(_maintenance_dsn(args.dsn))
    manifest = build_manifest(shape)
    if args.write:
        path = write_manifest(manifest)
        print(f"wrote {path} ({sum(len(v) for v in shape.values())} objects, revision {manifest['revision']})")
        return 0
    if args.check:
        current = load_manifest() if manifest_path().exists() else {}
        differences = compare(current.get("shape", {}), shape)
        stale = current.get("sources_sha256") != manifest["sources_sha256"]
        for difference in differences:
            print(difference)
        if stale:
            print("the manifest was generated from other SQL files")
        if differences or stale:
            print(f"regenerate it: {REGENERATE_COMMAND}")
            return 1
        print("sql/manifest.json is current")
        return 0
    json.dump(manifest, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
