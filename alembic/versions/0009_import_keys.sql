-- Revision 0009: a ledger of imported interaction rows that carried no
-- created_at, so that importing the same file again never doubles them.
-------------------------------------------------------------------------------
-- import_keys: one row per interaction imported without created_at, keyed by
-- a running SHA-256 of the file up to and including that row (pgfeed import)
CREATE TABLE feed.import_keys (
    import_key  bytea PRIMARY KEY,
    imported_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT import_keys_sha256 CHECK (octet_length(import_key) = 32)
);
COMMENT ON TABLE feed.import_keys IS
    'Interactions imported without created_at, by a running hash of their file up to the row: a re-import skips them.';
