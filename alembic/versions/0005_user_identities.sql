-- Revision 0005: identities for end users' own connections.
-- PostgREST and Supabase name a viewer by a JWT claim; a claim that is not an
-- integer (a Supabase UUID) maps to a pgfeed user id through this table,
-- which the host fills (feed.current_viewer reads it).
CREATE TABLE feed.user_identities (
    subject    text PRIMARY KEY,
    user_id    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_identities_subject_not_empty CHECK (subject <> '')
);
COMMENT ON TABLE feed.user_identities IS
    'JWT subjects (e.g. Supabase UUIDs) of end users, mapped to pgfeed user ids; written by the host.';
-- every identity of a user (when the host deletes or merges a user)
CREATE INDEX user_identities_user_idx ON feed.user_identities (user_id);
