-- Adopting the host's own tables (docs/adopt.md): feed.adopt_sql writes the
-- SQL that keeps feed.posts, feed.follows, feed.blocks or
-- feed.collective_members in step with a table the application already has:
-- a SECURITY DEFINER trigger function in the host table's schema, an AFTER
-- INSERT/UPDATE/DELETE row trigger on the table, and a one-time, idempotent
-- backfill of the rows already there.
--
-- The generator only reads the catalog and returns text; it installs nothing.
-- `pgfeed adopt` executes that text in the caller's own session (and `--sql`
-- prints the very same text for psql), so PostgreSQL itself checks that the
-- caller may create a trigger on the table, a function in its schema, read
-- the table and write feed.*. Every name in the text comes from the catalog
-- and is quoted with format(%I); every constant with format(%L); the function
-- body's dollar quote is chosen so that no identifier can close it.

-------------------------------------------------------------------------------
-- _adopt_targets: what each kind of table maps, key by key. A key names a
-- column of the host table (or, for *_default keys, a constant). Classes:
-- id (smallint, integer, bigint), time (timestamptz, timestamp, date), text
-- (any string type or enum), bool, flag (boolean, or a time that marks a
-- soft delete when not null), constant (a text value).
CREATE OR REPLACE FUNCTION feed._adopt_targets(p_kind text)
RETURNS TABLE (key text, target text, class text, required boolean, ord integer, description text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT t.key, t.target, t.class, t.required, t.ord, t.description
    FROM (VALUES
        ('posts', 'id', 'post_id', 'id', true, 1, 'the post''s id'),
        ('posts', 'author', 'author_id', 'id', true, 2, 'the author''s user id'),
        ('posts', 'created_at', 'created_at', 'time', false, 3, 'when the post was made (default: when it reaches the feed)'),
        ('posts', 'category', 'category', 'text', false, 4, 'its category (empty or null: category_default)'),
        ('posts', 'post_type', 'post_type', 'text', false, 5, 'its type (empty or null: post_type_default)'),
        ('posts', 'collective', 'collective_id', 'id', false, 6, 'the collective it was posted in'),
        ('posts', 'visibility', 'visibility', 'text', false, 7, 'public, shadow_ban or removed (null: public)'),
        ('posts', 'deleted', 'is_deleted', 'flag', false, 8, 'a soft-delete flag (boolean) or time (not null: deleted)'),
        ('posts', 'media_ready', 'media_ready', 'bool', false, 9, 'whether its media can be shown (null: true)'),
        ('posts', 'duration_ms', 'duration_ms', 'id', false, 10, 'a video''s length in milliseconds'),
        ('posts', 'category_default', NULL, 'constant', false, 11, 'the category of a post without one (default general)'),
        ('posts', 'post_type_default', NULL, 'constant', false, 12, 'the type of a post without one (default post)'),
        ('follows', 'follower', 'follower_id', 'id', true, 1, 'the user who follows'),
        ('follows', 'followee', 'followee_id', 'id', true, 2, 'the user followed'),
        ('follows', 'created_at', 'created_at', 'time', false, 3, 'since when'),
        ('blocks', 'user', 'user_id', 'id', true, 1, 'the user who blocks'),
        ('blocks', 'blocked', 'blocked_user_id', 'id', true, 2, 'the user blocked'),
        ('blocks', 'created_at', 'created_at', 'time', false, 3, 'since when'),
        ('members', 'collective', 'collective_id', 'id', true, 1, 'the collective (group, community)'),
        ('members', 'user', 'user_id', 'id', true, 2, 'the member'),
        ('members', 'joined_at', 'joined_at', 'time', false, 3, 'since when')
    ) AS t(kind, key, target, class, required, ord, description)
    WHERE t.kind = p_kind
    ORDER BY t.ord
$func$;

-------------------------------------------------------------------------------
-- _adopt_value: the SQL expression for one mapped key, read from the row
-- p_row (NEW, OLD or the backfill's alias h); p_column is already quoted
CREATE OR REPLACE FUNCTION feed._adopt_value(
    p_target text, p_class text, p_type regtype, p_row text, p_column text, p_defaults jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE
        WHEN p_target IN ('category', 'post_type') THEN
            format('coalesce(nullif(pg_catalog.btrim(%s.%s::text), %L), %L)', p_row, p_column, '',
                   p_defaults ->> p_target)
        WHEN p_target = 'visibility' THEN format('coalesce(%s.%s::text, %L)', p_row, p_column, 'public')
        WHEN p_class = 'flag' AND p_type = 'boolean'::regtype THEN format('coalesce(%s.%s, false)', p_row, p_column)
        WHEN p_class = 'flag' THEN format('(%s.%s IS NOT NULL)', p_row, p_column)
        WHEN p_class = 'bool' THEN format('coalesce(%s.%s, true)', p_row, p_column)
        WHEN p_class = 'time' THEN format('coalesce(%s.%s::timestamptz, pg_catalog.now())', p_row, p_column)
        WHEN p_target = 'duration_ms' THEN format('%s.%s::integer', p_row, p_column)
        ELSE format('%s.%s::bigint', p_row, p_column)
    END
$func$;

-------------------------------------------------------------------------------
-- adopt_sql: the SQL that adopts p_table as the source of feed.<p_kind>
-- (posts, follows, blocks, members), or with p_remove the SQL that undoes it.
-- Validates the whole mapping first (22023 naming the problem); returns text
-- and writes nothing.
CREATE OR REPLACE FUNCTION feed.adopt_sql(
    p_kind text, p_table regclass, p_columns jsonb DEFAULT '{}', p_remove boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_kinds constant text[] := ARRAY['posts', 'follows', 'blocks', 'members'];
    v_schema text;
    v_rel text;
    v_relkind "char";
    v_table text;
    v_function text;
    v_trigger text := 'pgfeed_adopt_' || p_kind;
    v_key text;
    v_value jsonb;
    v_spec record;
    v_type regtype;
    v_defaults jsonb := jsonb_build_object('category', 'general', 'post_type', 'post');
    v_map jsonb := '{}';        -- key -> {column (quoted), type, target, class}
    v_update_of text[] := '{}';
    v_targets text[] := '{}';
    v_new text[] := '{}';
    v_backfill text[] := '{}';
    v_sets text[] := '{}';
    v_old_key text;
    v_new_key text;
    v_body text;
    v_tag text := 'pgfeed';
    v_sql text;
    v_a text;
    v_b text;
    v_target_table text;
    v_ta text;
    v_tb text;
BEGIN
    IF p_kind IS NULL OR NOT p_kind = ANY (v_kinds) THEN
        PERFORM feed._bad_argument('p_kind', format('unknown kind %L; expected one of %s',
                                   p_kind, array_to_string(v_kinds, ', ')));
    END IF;
    IF p_table IS NULL THEN
        PERFORM feed._bad_argument('p_table', 'must not be null');
    END IF;
    SELECT n.nspname, c.relname, c.relkind INTO v_schema, v_rel, v_relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_table;
    IF NOT FOUND THEN
        PERFORM feed._bad_argument('p_table', format('no table with oid %s', p_table::oid));
    ELSIF v_relkind NOT IN ('r', 'p') THEN
        PERFORM feed._bad_argument('p_table', format('%s is not a table (views and other relations cannot be adopted)',
                                                     p_table));
    ELSIF v_schema IN ('feed', 'pg_catalog', 'information_schema') OR v_schema LIKE 'pg\_%' THEN
        PERFORM feed._bad_argument('p_table', format('%s belongs to schema %I; adopt the application''s own tables',
                                                     p_table, v_schema));
    END IF;
    v_table := format('%I.%I', v_schema, v_rel);
    -- deterministic per table and kind, readable, at most 63 bytes whatever the table is called
    v_function := format('%I.%I', v_schema, format('pgfeed_%s_%s_%s', p_kind,
                         left(regexp_replace(lower(v_rel), '[^a-z0-9_]+', '', 'g'), 24),
                         left(md5(v_table), 8)));

    IF p_remove THEN
        RETURN format(E'DROP TRIGGER IF EXISTS %I ON %s;\nDROP FUNCTION IF EXISTS %s();\n',
                      v_trigger, v_table, v_function);
    END IF;

    -- the mapping: an object of known keys, each naming a column of the table
    IF p_columns IS NULL OR jsonb_typeof(p_columns) <> 'object' THEN
        PERFORM feed._bad_argument('p_columns', 'must be a JSON object mapping keys to column names');
    END IF;
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_columns) e ORDER BY e.key LOOP
        SELECT * INTO v_spec FROM feed._adopt_targets(p_kind) t WHERE t.key = v_key;
        IF NOT FOUND THEN
            PERFORM feed._bad_argument('p_columns', format('unknown key %L for %s; expected %s', v_key, p_kind,
                (SELECT string_agg(t.key, ', ' ORDER BY t.ord) FROM feed._adopt_targets(p_kind) t)));
        END IF;
        IF jsonb_typeof(v_value) <> 'string' OR btrim(v_value #>> '{}') = '' THEN
            PERFORM feed._bad_argument('p_columns', format('%s: expected a non-empty string, got %s', v_key, v_value));
        END IF;
        IF v_spec.class = 'constant' THEN
            v_defaults := v_defaults || jsonb_build_object(replace(v_key, '_default', ''), v_value #>> '{}');
            CONTINUE;
        END IF;
        SELECT a.atttypid::regtype INTO v_type
        FROM pg_attribute a
        WHERE a.attrelid = p_table AND a.attname = v_value #>> '{}' AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            PERFORM feed._bad_argument('p_columns', format('%s: table %s has no column %I', v_key, p_table,
                                                           v_value #>> '{}'));
        END IF;
        IF NOT (CASE v_spec.class
            WHEN 'id' THEN v_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
            WHEN 'time' THEN v_type IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
            WHEN 'bool' THEN v_type = 'boolean'::regtype
            WHEN 'flag' THEN v_type IN ('boolean'::regtype, 'timestamptz'::regtype, 'timestamp'::regtype,
                                        'date'::regtype)
            ELSE EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = v_type AND (t.typcategory = 'S' OR t.typtype = 'e'))
        END) THEN
            PERFORM feed._bad_argument('p_columns', format('%s: column %I of %s is %s; %s needs %s', v_key,
                v_value #>> '{}', p_table, v_type, v_key, CASE v_spec.class
                    WHEN 'id' THEN 'smallint, integer or bigint' WHEN 'time' THEN 'timestamptz, timestamp or date'
                    WHEN 'bool' THEN 'boolean' WHEN 'flag' THEN 'boolean, or a timestamp (not null: deleted)'
                    ELSE 'a string type or an enum' END));
        END IF;
        v_map := v_map || jsonb_build_object(v_key, jsonb_build_object(
            'column', quote_ident(v_value #>> '{}'), 'type', v_type::oid, 'target', v_spec.target,
            'class', v_spec.class, 'ord', v_spec.ord));
    END LOOP;
    FOR v_spec IN SELECT * FROM feed._adopt_targets(p_kind) t WHERE t.required AND NOT v_map ? t.key LOOP
        PERFORM feed._bad_argument('p_columns', format('%s needs the key %L (the column holding %s)',
                                                       p_kind, v_spec.key, v_spec.description));
    END LOOP;

    -- the column lists, in a fixed order
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(v_map) e ORDER BY (e.value ->> 'ord')::int LOOP
        v_update_of := v_update_of || (v_value ->> 'column');
        v_targets := v_targets || quote_ident(v_value ->> 'target');
        v_new := v_new || feed._adopt_value(v_value ->> 'target', v_value ->> 'class', (v_value ->> 'type')::oid::regtype,
                                            'NEW', v_value ->> 'column', v_defaults);
        v_backfill := v_backfill || feed._adopt_value(v_value ->> 'target', v_value ->> 'class',
                                                      (v_value ->> 'type')::oid::regtype, 'h', v_value ->> 'column',
                                                      v_defaults);
    END LOOP;

    IF p_kind = 'posts' THEN
        -- the defaults of unmapped category and post_type are written too (they are NOT NULL)
        IF NOT v_map ? 'category' THEN
            v_targets := v_targets || 'category'::text;
            v_new := v_new || format('%L::text', v_defaults ->> 'category');
            v_backfill := v_backfill || format('%L::text', v_defaults ->> 'category');
        END IF;
        IF NOT v_map ? 'post_type' THEN
            v_targets := v_targets || 'post_type'::text;
            v_new := v_new || format('%L::text', v_defaults ->> 'post_type');
            v_backfill := v_backfill || format('%L::text', v_defaults ->> 'post_type');
        END IF;
        -- a row of the app exists, so without a soft-delete column it is not deleted
        IF NOT v_map ? 'deleted' THEN
            v_targets := v_targets || 'is_deleted'::text;
            v_new := v_new || 'false'::text;
            v_backfill := v_backfill || 'false'::text;
        END IF;
        SELECT array_agg(format('%s = excluded.%s', t, t) ORDER BY i) INTO v_sets
        FROM unnest(v_targets) WITH ORDINALITY AS u(t, i) WHERE t <> 'post_id';
        v_old_key := format('OLD.%s', v_map -> 'id' ->> 'column');
        v_new_key := format('NEW.%s', v_map -> 'id' ->> 'column');
        v_body := format($body$
BEGIN
    IF pg_catalog.to_regclass('feed.posts') IS NULL THEN
        RETURN NULL;  -- pgfeed was uninstalled: the application's writes go on
    END IF;
    -- a deleted row, a changed id or a row that can no longer be shown: the old post leaves the feed
    -- (it stays in feed.posts, marked deleted, so that its history stays consistent)
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (%1$s IS DISTINCT FROM %2$s OR NEW.%3$s IS NULL)) THEN
        UPDATE feed.posts p SET is_deleted = true WHERE p.post_id = %1$s::bigint AND NOT p.is_deleted;
    END IF;
    IF TG_OP <> 'DELETE' AND %2$s IS NOT NULL AND NEW.%3$s IS NOT NULL THEN
        INSERT INTO feed.posts AS p (%4$s)
        VALUES (%5$s)
        ON CONFLICT (post_id) DO UPDATE
        SET %6$s
        WHERE (%7$s) IS DISTINCT FROM (%8$s);
    END IF;
    RETURN NULL;
END
$body$, v_old_key, v_new_key, v_map -> 'author' ->> 'column',
            array_to_string(v_targets, ', '), array_to_string(v_new, ', '),
            array_to_string(v_sets, ', '),
            (SELECT string_agg('p.' || t, ', ' ORDER BY i) FROM unnest(v_targets) WITH ORDINALITY u(t, i)
             WHERE t <> 'post_id'),
            (SELECT string_agg('excluded.' || t, ', ' ORDER BY i) FROM unnest(v_targets) WITH ORDINALITY u(t, i)
             WHERE t <> 'post_id'));
        v_sql := format($backfill$
-- the one-time backfill: every post already in %1$s (running it again changes nothing)
INSERT INTO feed.posts AS p (%2$s)
SELECT DISTINCT ON (h.%3$s) %4$s
FROM %1$s h
WHERE h.%3$s IS NOT NULL AND h.%5$s IS NOT NULL
ORDER BY h.%3$s
ON CONFLICT (post_id) DO UPDATE
SET %6$s
WHERE (%7$s) IS DISTINCT FROM (%8$s);
$backfill$, v_table, array_to_string(v_targets, ', '), v_map -> 'id' ->> 'column', array_to_string(v_backfill, ', '),
            v_map -> 'author' ->> 'column', array_to_string(v_sets, ', '),
            (SELECT string_agg('p.' || t, ', ' ORDER BY i) FROM unnest(v_targets) WITH ORDINALITY u(t, i)
             WHERE t <> 'post_id'),
            (SELECT string_agg('excluded.' || t, ', ' ORDER BY i) FROM unnest(v_targets) WITH ORDINALITY u(t, i)
             WHERE t <> 'post_id'));
    ELSE
        -- pairs: (follower, followee), (user, blocked), (collective, user)
        SELECT CASE p_kind WHEN 'follows' THEN 'follower' WHEN 'blocks' THEN 'user' ELSE 'collective' END,
               CASE p_kind WHEN 'follows' THEN 'followee' WHEN 'blocks' THEN 'blocked' ELSE 'user' END,
               CASE p_kind WHEN 'follows' THEN 'feed.follows' WHEN 'blocks' THEN 'feed.blocks'
                           ELSE 'feed.collective_members' END
        INTO v_a, v_b, v_target_table;
        v_ta := v_map -> v_a ->> 'target';
        v_tb := v_map -> v_b ->> 'target';
        v_a := v_map -> v_a ->> 'column';
        v_b := v_map -> v_b ->> 'column';
        v_body := format($body$
BEGIN
    IF pg_catalog.to_regclass(%4$L) IS NULL THEN
        RETURN NULL;  -- pgfeed was uninstalled: the application's writes go on
    END IF;
    -- the old pair leaves feed.* unless another row of the table still holds it
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (OLD.%1$s, OLD.%2$s) IS DISTINCT FROM (NEW.%1$s, NEW.%2$s)) THEN
        IF NOT EXISTS (SELECT 1 FROM %3$s h WHERE h.%1$s = OLD.%1$s AND h.%2$s = OLD.%2$s) THEN
            DELETE FROM %4$s f WHERE f.%5$s = OLD.%1$s::bigint AND f.%6$s = OLD.%2$s::bigint;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.%1$s IS NOT NULL AND NEW.%2$s IS NOT NULL%7$s THEN
        INSERT INTO %4$s (%8$s)
        VALUES (%9$s)
        ON CONFLICT (%5$s, %6$s) DO NOTHING;
    END IF;
    RETURN NULL;
END
$body$, v_a, v_b, v_table, v_target_table, v_ta, v_tb,
            CASE WHEN p_kind = 'members' THEN '' ELSE format(' AND NEW.%s <> NEW.%s', v_a, v_b) END,
            array_to_string(v_targets, ', '), array_to_string(v_new, ', '));
        v_sql := format($backfill$
-- the one-time backfill: every row already in %1$s (running it again changes nothing)
INSERT INTO %2$s (%3$s)
SELECT DISTINCT ON (h.%4$s, h.%5$s) %6$s
FROM %1$s h
WHERE h.%4$s IS NOT NULL AND h.%5$s IS NOT NULL%7$s
ORDER BY h.%4$s, h.%5$s
ON CONFLICT (%8$s, %9$s) DO NOTHING;
$backfill$, v_table, v_target_table, array_to_string(v_targets, ', '), v_a, v_b, array_to_string(v_backfill, ', '),
            CASE WHEN p_kind = 'members' THEN '' ELSE format(' AND h.%s <> h.%s', v_a, v_b) END, v_ta, v_tb);
    END IF;

    -- a dollar quote that nothing in the body can close
    WHILE position('$' || v_tag in v_body) > 0 LOOP
        v_tag := v_tag || '_';
    END LOOP;

    RETURN format($sql$-- pgfeed adopt: keep feed.%1$s in step with %2$s
CREATE OR REPLACE FUNCTION %3$s() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $%4$s$%5$s$%4$s$;
REVOKE ALL ON FUNCTION %3$s() FROM PUBLIC;
COMMENT ON FUNCTION %3$s() IS %6$L;
CREATE OR REPLACE TRIGGER %7$I
AFTER INSERT OR DELETE OR UPDATE OF %8$s ON %2$s
FOR EACH ROW EXECUTE FUNCTION %3$s();
%9$s$sql$,
        CASE p_kind WHEN 'members' THEN 'collective_members' ELSE p_kind END, v_table, v_function, v_tag, v_body,
        'pgfeed adopt ' || jsonb_build_object('kind', p_kind, 'columns', p_columns)::text,
        v_trigger, array_to_string(v_update_of, ', '), v_sql);
END
$func$;

-------------------------------------------------------------------------------
-- adopted_tables: the tables adopted in this database, read from their triggers
CREATE OR REPLACE FUNCTION feed.adopted_tables()
RETURNS TABLE (kind text, table_name text, trigger_name text, function_name text, columns jsonb)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT m.meta ->> 'kind', t.tgrelid::regclass::text, t.tgname::text, t.tgfoid::regprocedure::text,
           m.meta -> 'columns'
    FROM pg_trigger t
    CROSS JOIN LATERAL (SELECT obj_description(t.tgfoid, 'pg_proc') AS comment) d
    CROSS JOIN LATERAL (SELECT CASE WHEN d.comment LIKE 'pgfeed adopt {%'
                                    THEN substr(d.comment, 14)::jsonb END AS meta) m
    WHERE NOT t.tgisinternal AND t.tgname::text LIKE 'pgfeed\_adopt\_%' AND m.meta IS NOT NULL
    ORDER BY 2, 1
$func$;
