-------------------------------------------------------------------------------
-- sessions and their pages are keyed by the viewer: on a Citus cluster they
-- are distributed by viewer_key beside the viewer's other rows, and a
-- distributed table's unique keys must include its distribution column,
-- which may not be NULL. viewer_key is the viewer's user_id, or for an
-- anonymous session its seed (hashtextextended(session_id::text, 0)), so
-- anonymous sessions spread over the shards and a cursor alone finds its
-- session.
ALTER TABLE feed.feed_sessions ADD COLUMN viewer_key bigint;
UPDATE feed.feed_sessions SET viewer_key = coalesce(user_id, seed);
ALTER TABLE feed.feed_sessions ALTER COLUMN viewer_key SET NOT NULL;
COMMENT ON COLUMN feed.feed_sessions.viewer_key IS
    'The viewer''s user_id, or for an anonymous session its seed: the key of its rows (and its shard on a cluster).';
ALTER TABLE feed.feed_session_items ADD COLUMN viewer_key bigint;
UPDATE feed.feed_session_items i SET viewer_key = s.viewer_key
FROM feed.feed_sessions s WHERE s.session_id = i.session_id;
ALTER TABLE feed.feed_session_items ALTER COLUMN viewer_key SET NOT NULL;

-- a coordinator table may not reference a distributed one: the rows of the
-- served pages counted as engaged are deleted with their sessions by
-- run_maintenance instead
ALTER TABLE feed.analytics_engaged_rows DROP CONSTRAINT analytics_engaged_rows_session_id_post_id_fkey;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_session_id_fkey;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_post_once;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_pkey;
ALTER TABLE feed.feed_sessions DROP CONSTRAINT feed_sessions_pkey;
ALTER TABLE feed.feed_sessions ADD CONSTRAINT feed_sessions_pkey PRIMARY KEY (viewer_key, session_id);
ALTER TABLE feed.feed_session_items
    ADD CONSTRAINT feed_session_items_pkey PRIMARY KEY (viewer_key, session_id, page_no, rank);
-- a post appears at most once in a session, whatever happens between pages
ALTER TABLE feed.feed_session_items
    ADD CONSTRAINT feed_session_items_post_once UNIQUE (viewer_key, session_id, post_id);
ALTER TABLE feed.feed_session_items
    ADD CONSTRAINT feed_session_items_session_fkey FOREIGN KEY (viewer_key, session_id)
    REFERENCES feed.feed_sessions (viewer_key, session_id) ON DELETE CASCADE;
