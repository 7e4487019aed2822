-- Triggers that keep engine copies of feed.posts data in step with the host's writes.

-------------------------------------------------------------------------------
-- _post_embeddings_beside: the table a trigger on feed.posts writes the
-- embedding copies to. On one server that is feed.post_embeddings. On a Citus
-- cluster both are reference tables and the triggers fire on each node's
-- placement of posts (TG_TABLE_NAME is then posts_<shard id>), where writing
-- feed.post_embeddings would be a distributed write from inside a shard, which
-- Citus refuses; each placement writes the same node's placement of
-- post_embeddings instead, so every node's copy stays in step in the same
-- transaction.
CREATE OR REPLACE FUNCTION feed._post_embeddings_beside(p_fired_on name)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_shard bigint;
BEGIN
    IF p_fired_on = 'posts' THEN
        RETURN 'feed.post_embeddings';
    END IF;
    -- dynamic: pg_dist_shard exists only where Citus is installed
    EXECUTE 'SELECT s.shardid FROM pg_catalog.pg_dist_shard s'
            ' WHERE s.logicalrelid = pg_catalog.to_regclass(''feed.post_embeddings'')'
       INTO v_shard;
    IF v_shard IS NULL THEN
        RAISE EXCEPTION 'a trigger on %.% found no placement of feed.post_embeddings', 'feed', p_fired_on
            USING ERRCODE = '55000', HINT = 'on a Citus cluster, posts and post_embeddings are reference tables';
    END IF;
    RETURN format('feed.%I', 'post_embeddings_' || v_shard);
END
$func$;

-------------------------------------------------------------------------------
-- _posts_embedding_copied: keep one post's copy in feed.post_embeddings in
-- step with its embedding, on insert and on an update that changes it. Row
-- level, not statement level with a transition table: Citus fires row
-- triggers on a reference table's placements but cannot pass a transition
-- table to them, and posts is a reference table on a cluster.
CREATE OR REPLACE FUNCTION feed._posts_embedding_copied()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_copies text;
BEGIN
    IF TG_TABLE_NAME = 'posts' THEN  -- one server: static statements, planned once
        IF NEW.embedding IS NULL THEN
            DELETE FROM feed.post_embeddings e WHERE e.post_id = NEW.post_id;
        ELSE
            INSERT INTO feed.post_embeddings (post_id, embedding) VALUES (NEW.post_id, NEW.embedding)
            ON CONFLICT (post_id) DO UPDATE SET embedding = excluded.embedding;
        END IF;
        RETURN NULL;
    END IF;
    v_copies := feed._post_embeddings_beside(TG_TABLE_NAME);
    IF NEW.embedding IS NULL THEN
        EXECUTE format('DELETE FROM %s e WHERE e.post_id = $1', v_copies) USING NEW.post_id;
    ELSE
        EXECUTE format('INSERT INTO %s (post_id, embedding) VALUES ($1, $2)'
                       ' ON CONFLICT (post_id) DO UPDATE SET embedding = excluded.embedding', v_copies)
        USING NEW.post_id, NEW.embedding;
    END IF;
    RETURN NULL;
END
$func$;

CREATE OR REPLACE TRIGGER posts_embedding_inserted
    AFTER INSERT ON feed.posts
    FOR EACH ROW WHEN (NEW.embedding IS NOT NULL)
    EXECUTE FUNCTION feed._posts_embedding_copied();

CREATE OR REPLACE TRIGGER posts_embedding_changed
    AFTER UPDATE OF embedding ON feed.posts
    -- IS DISTINCT FROM, spelled with qualified operators (the condition is bound at creation)
    FOR EACH ROW WHEN ((OLD.embedding IS NULL) OPERATOR(pg_catalog.<>) (NEW.embedding IS NULL)
                       OR OLD.embedding OPERATOR(@extschema:vector@.<>) NEW.embedding)
    EXECUTE FUNCTION feed._posts_embedding_copied();

-------------------------------------------------------------------------------
-- _posts_embedding_deleted / _posts_truncated: a deleted post's copy goes too
CREATE OR REPLACE FUNCTION feed._posts_embedding_deleted()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF TG_TABLE_NAME = 'posts' THEN
        DELETE FROM feed.post_embeddings e WHERE e.post_id = OLD.post_id;
    ELSE
        EXECUTE format('DELETE FROM %s e WHERE e.post_id = $1', feed._post_embeddings_beside(TG_TABLE_NAME))
        USING OLD.post_id;
    END IF;
    RETURN NULL;
END
$func$;

CREATE OR REPLACE TRIGGER posts_embedding_deleted
    AFTER DELETE ON feed.posts
    FOR EACH ROW WHEN (OLD.embedding IS NOT NULL)
    EXECUTE FUNCTION feed._posts_embedding_deleted();

-- the statement-level triggers with transition tables these replace
DROP TRIGGER IF EXISTS posts_embeddings_inserted ON feed.posts;
DROP TRIGGER IF EXISTS posts_embeddings_deleted ON feed.posts;
DROP FUNCTION IF EXISTS feed._posts_embeddings_inserted();
DROP FUNCTION IF EXISTS feed._posts_embeddings_deleted();
DROP FUNCTION IF EXISTS feed._posts_embedding_changed();

CREATE OR REPLACE FUNCTION feed._posts_truncated()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    -- DELETE, not TRUNCATE: the same TRUNCATE statement may already be emptying it
    EXECUTE format('DELETE FROM %s', feed._post_embeddings_beside(TG_TABLE_NAME));
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
