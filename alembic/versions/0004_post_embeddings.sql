-- 0004: the HNSW index moves to a companion table of embeddings.
--
-- Every like updates feed.posts (counters, trending_score). An UPDATE that is
-- not HOT adds an entry to every index of the table, and an HNSW insert costs
-- milliseconds: with the HNSW index on feed.posts each like paid for one.
-- feed.post_embeddings holds a copy of each non-null embedding (kept by
-- triggers on feed.posts) and carries the HNSW index; feed.posts stores its
-- embedding out of line (TOAST), so counter updates copy small rows only.

DO $create_post_embeddings$
BEGIN
    EXECUTE 'CREATE TABLE feed.post_embeddings ('
         || ' post_id bigint PRIMARY KEY,'
         || ' embedding ' || (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                              WHERE a.attrelid = 'feed.posts'::regclass AND a.attname = 'embedding')
         || ' NOT NULL)';
END
$create_post_embeddings$;
COMMENT ON TABLE feed.post_embeddings IS
    'Copy of feed.posts.embedding (non-null ones), kept by triggers; carries the HNSW index.';

INSERT INTO feed.post_embeddings (post_id, embedding)
SELECT p.post_id, p.embedding FROM feed.posts p WHERE p.embedding IS NOT NULL;

DROP INDEX feed.posts_embedding_hnsw_idx;
-- similar_posts and the similar source: nearest neighbours by cosine distance
CREATE INDEX post_embeddings_hnsw_idx ON feed.post_embeddings USING hnsw (embedding vector_cosine_ops);

ALTER TABLE feed.posts ALTER COLUMN embedding SET STORAGE EXTERNAL;
ALTER TABLE feed.posts SET (toast_tuple_target = 128);
