-- Revision 0010: tag taste. An optional feed.posts.tags column written by the
-- host, and each viewer's decayed affinity per tag.
-------------------------------------------------------------------------------
-- revision 0010: tag taste
-- a post's optional tags, written by the host; NULL or '{}' means none. The
-- posts_tags_check trigger (sql/functions/15_posts.sql) refuses bad ones and
-- stores them trimmed, lower-case and de-duplicated; this CHECK is its backstop
ALTER TABLE feed.posts ADD COLUMN tags text[];
ALTER TABLE feed.posts ADD CONSTRAINT posts_tags_bounded CHECK (cardinality(tags) <= 32);
COMMENT ON COLUMN feed.posts.tags IS
    'Optional tags (at most 32, each 1..64 characters), stored trimmed, lower-case and de-duplicated.';

-- taste per tag, kept like feed.user_category_affinity (same signals, decay
-- and range); keyed by viewer first, like every per-viewer table
CREATE TABLE feed.user_tag_affinity (
    user_id    bigint NOT NULL,
    tag        text NOT NULL,
    affinity   double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, tag),
    CONSTRAINT user_tag_affinity_range CHECK (affinity BETWEEN -1 AND 1)
);
COMMENT ON TABLE feed.user_tag_affinity IS
    'Taste per post tag in [-1, 1] as of updated_at; it halves every category_affinity_half_life.';
