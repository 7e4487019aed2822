-- Triggers that keep engine copies of feed.posts data in step with the host's writes.

-------------------------------------------------------------------------------
-- _posts_embeddings_inserted: copy the embeddings of newly inserted posts
-- (statement level: one INSERT ... SELECT however many rows a bulk load adds)
CREATE OR REPLACE FUNCTION feed._posts_embeddings_inserted()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    INSERT INTO feed.post_embeddings (post_id, embedding)
    SELECT n.post_id, n.embedding FROM new_posts n WHERE n.embedding IS NOT NULL
    ON CONFLICT (post_id) DO UPDATE SET embedding = excluded.embedding;
    RETURN NULL;
END
$func$;

CREATE OR REPLACE TRIGGER posts_embeddings_inserted
    AFTER INSERT ON feed.posts
    REFERENCING NEW TABLE AS new_posts
    FOR EACH STATEMENT EXECUTE FUNCTION feed._posts_embeddings_inserted();

-------------------------------------------------------------------------------
-- _posts_embedding_changed: follow a host's change of one post's embedding
-- (fires only for UPDATEs that name the embedding column)
CREATE OR REPLACE FUNCTION feed._posts_embedding_changed()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF NEW.embedding IS NULL THEN
        DELETE FROM feed.post_embeddings e WHERE e.post_id = NEW.post_id;
    ELSE
        INSERT INTO feed.post_embeddings (post_id, embedding) VALUES (NEW.post_id, NEW.embedding)
        ON CONFLICT (post_id) DO UPDATE SET embedding = excluded.embedding;
    END IF;
    RETURN NULL;
END
$func$;

CREATE OR REPLACE TRIGGER posts_embedding_changed
    AFTER UPDATE OF embedding ON feed.posts
    -- IS DISTINCT FROM, spelled with qualified operators (the condition is bound at creation)
    FOR EACH ROW WHEN ((OLD.embedding IS NULL) OPERATOR(pg_catalog.<>) (NEW.embedding IS NULL)
                       OR OLD.embedding OPERATOR(@extschema:vector@.<>) NEW.embedding)
    EXECUTE FUNCTION feed._posts_embedding_changed();

-------------------------------------------------------------------------------
-- _posts_embeddings_deleted / _posts_truncated: a deleted post's copy goes too
CREATE OR REPLACE FUNCTION feed._posts_embeddings_deleted()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    DELETE FROM feed.post_embeddings e WHERE e.post_id IN (SELECT o.post_id FROM old_posts o);
    RETURN NULL;
END
$func$;

CREATE OR REPLACE TRIGGER posts_embeddings_deleted
    AFTER DELETE ON feed.posts
    REFERENCING OLD TABLE AS old_posts
    FOR EACH STATEMENT EXECUTE FUNCTION feed._posts_embeddings_deleted();

CREATE OR REPLACE FUNCTION feed._posts_truncated()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    -- DELETE, not TRUNCATE: the same TRUNCATE statement may already be emptying it
    DELETE FROM feed.post_embeddings;
    RETURN NULL;
END
$func$;

CREATE OR REPLACE TRIGGER posts_truncated
    AFTER TRUNCATE ON feed.posts
    FOR EACH STATEMENT EXECUTE FUNCTION feed._posts_truncated();
