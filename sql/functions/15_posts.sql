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

-------------------------------------------------------------------------------
-- _tags_problem: NULL when p_tags is a valid value of feed.posts.tags, else
-- what is wrong with it: a one-dimensional array without null elements; each
-- element, trimmed, 1 to 64 characters; at most 32 distinct tags. NULL and
-- '{}' mean no tags. The trigger below and `pgfeed import` both ask it.
CREATE OR REPLACE FUNCTION feed._tags_problem(p_tags text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_bad record;
    v_distinct integer;
BEGIN
    IF p_tags IS NULL OR cardinality(p_tags) = 0 THEN
        RETURN NULL;
    END IF;
    IF array_ndims(p_tags) > 1 THEN
        RETURN format('must be a one-dimensional array, got %s dimensions', array_ndims(p_tags));
    END IF;
    SELECT u.i, u.tag INTO v_bad
    FROM unnest(p_tags) WITH ORDINALITY AS u(tag, i)
    WHERE u.tag IS NULL OR btrim(regexp_replace(u.tag, '\s+', ' ', 'g')) = ''
       OR length(btrim(regexp_replace(u.tag, '\s+', ' ', 'g'))) > 64
    ORDER BY u.i LIMIT 1;
    IF FOUND THEN
        RETURN format('tag %s %s', v_bad.i, CASE WHEN v_bad.tag IS NULL THEN 'is null'
                                                 WHEN btrim(regexp_replace(v_bad.tag, '\s+', ' ', 'g')) = ''
                                                     THEN 'is empty'
                                                 ELSE 'is longer than 64 characters' END);
    END IF;
    v_distinct := cardinality(feed._normalize_tags(p_tags));
    IF v_distinct > 32 THEN
        RETURN format('at most 32 distinct tags per post, got %s', v_distinct);
    END IF;
    RETURN NULL;
END
$func$;

-------------------------------------------------------------------------------
-- _normalize_tags: the stored form of valid tags: each trimmed, runs of white
-- space made one space, lower-case; duplicates dropped, first occurrence kept
CREATE OR REPLACE FUNCTION feed._normalize_tags(p_tags text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE WHEN p_tags IS NOT NULL THEN coalesce((
        SELECT array_agg(n.tag ORDER BY n.first)
        FROM (SELECT lower(btrim(regexp_replace(u.tag, '\s+', ' ', 'g'))) AS tag, min(u.i) AS first
              FROM unnest(p_tags) WITH ORDINALITY AS u(tag, i)
              WHERE u.tag IS NOT NULL
              GROUP BY 1) n), '{}') END
$func$;

-------------------------------------------------------------------------------
-- _posts_tags_check: a host's tags are checked (22023 naming the column; the
-- statement writes nothing) and stored normalized. Fires only for rows with
-- tags, and on UPDATE only when the statement names the column, so untagged
-- posts and the engine's counter updates never pay for it.
CREATE OR REPLACE FUNCTION feed._posts_tags_check()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_problem text := feed._tags_problem(NEW.tags);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'tags: %', v_problem USING ERRCODE = '22023',
            HINT = format('post %s: tags are 1 to 32 strings of 1 to 64 characters, without nulls', NEW.post_id);
    END IF;
    NEW.tags := feed._normalize_tags(NEW.tags);
    RETURN NEW;
END
$func$;

CREATE OR REPLACE TRIGGER posts_tags_check
    BEFORE INSERT OR UPDATE OF tags ON feed.posts
    FOR EACH ROW WHEN (NEW.tags IS NOT NULL)
    EXECUTE FUNCTION feed._posts_tags_check();
