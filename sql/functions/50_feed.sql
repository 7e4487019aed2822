-- The feed (contract §3.1, §4): feed.get_personalized_feed and feed.explain_score,
-- with their private helpers: cursors, the viewer's context, candidate
-- sources with the fallback ladder, component scoring, page selection.

-------------------------------------------------------------------------------
-- _post_visible_to: the never-shown rules on the post's own columns.
-- Deliberately without SET search_path: it reads no relation and must stay
-- inlinable (a SET clause makes it a function call per candidate). So every
-- operator is qualified with OPERATOR(pg_catalog.x): an inlined body is
-- parsed with the caller's search_path, and a look-alike operator planted in
-- a schema on that path must never be chosen.
CREATE OR REPLACE FUNCTION feed._post_visible_to(
    p_visibility text, p_is_deleted boolean, p_media_ready boolean, p_duration_ms integer,
    p_author_id bigint, p_viewer bigint, p_max_duration_ms integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $func$
    SELECT NOT p_is_deleted
       AND p_media_ready
       AND (p_duration_ms IS NULL OR p_duration_ms OPERATOR(pg_catalog.<=) p_max_duration_ms)
       AND (p_visibility OPERATOR(pg_catalog.=) 'public'::pg_catalog.text
            OR (p_visibility OPERATOR(pg_catalog.=) 'shadow_ban'::pg_catalog.text
                AND p_author_id OPERATOR(pg_catalog.=) p_viewer))
$func$;

-------------------------------------------------------------------------------
-- _uniform: a deterministic pseudo-random number in [0, 1) from a seed and a
-- key. No SET search_path, so that it inlines into the ranking queries; every
-- operator and function is schema-qualified instead (see _post_visible_to).
CREATE OR REPLACE FUNCTION feed._uniform(p_seed bigint, p_key bigint)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $func$
    SELECT (pg_catalog.hashint8extended(p_key, p_seed) OPERATOR(pg_catalog.&) 2147483647::pg_catalog.int8)
               ::pg_catalog.float8
           OPERATOR(pg_catalog./) 2147483648.0::pg_catalog.float8
$func$;

-------------------------------------------------------------------------------
-- _cursor_mac: the signature of a cursor payload (per-install secret)
CREATE OR REPLACE FUNCTION feed._cursor_mac(p_payload bytea)
RETURNS bytea
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT substring(sha256(decode(s.value, 'hex') || p_payload) FROM 1 FOR 16)
    FROM feed.install_state s WHERE s.key = 'cursor_secret'
$func$;

-------------------------------------------------------------------------------
-- _cursor_encode: an opaque, signed cursor for page p_page_no of a session
CREATE OR REPLACE FUNCTION feed._cursor_encode(p_session_id uuid, p_page_no integer)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT 'v1.' || translate(encode(payload || feed._cursor_mac(payload), 'base64'), '+/=', '-_')
    FROM (SELECT decode(replace(p_session_id::text, '-', ''), 'hex') || int4send(p_page_no) AS payload) x
$func$;

-------------------------------------------------------------------------------
-- _cursor_decode: session and page of a cursor; 22023 if malformed or tampered
CREATE OR REPLACE FUNCTION feed._cursor_decode(p_cursor text, OUT session_id uuid, OUT page_no integer)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_raw bytea;
BEGIN
    IF p_cursor !~ '^v1\.[A-Za-z0-9_-]{48}$' THEN
        PERFORM feed._bad_argument('p_page_after', 'malformed cursor (pass the next_cursor of a previous page, or NULL)');
    END IF;
    v_raw := decode(translate(substring(p_cursor FROM 4), '-_', '+/'), 'base64');
    IF length(v_raw) <> 36
       OR substring(v_raw FROM 21 FOR 16) IS DISTINCT FROM feed._cursor_mac(substring(v_raw FROM 1 FOR 20)) THEN
        PERFORM feed._bad_argument('p_page_after', 'invalid cursor (tampered, or from another installation)');
    END IF;
    session_id := encode(substring(v_raw FROM 1 FOR 16), 'hex')::uuid;
    page_no := ('x' || encode(substring(v_raw FROM 17 FOR 4), 'hex'))::bit(32)::integer;
END
$func$;

-------------------------------------------------------------------------------
-- _viewer_context: what the feed needs to know about a viewer, read once per
-- page from small per-viewer tables (never from the raw logs). PL/pgSQL, one
-- plain statement per table: Citus plans each as a lookup on the viewer's
-- shard, where it cannot plan a LANGUAGE sql body with parameters; the
-- setting is read before the statement that uses it, never inside one a
-- shard would run.
CREATE OR REPLACE FUNCTION feed._viewer_context(p_user_id bigint, p_now timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_half_life double precision :=
        extract(epoch FROM feed._setting_interval('category_affinity_half_life'))::double precision;
    v_blocked jsonb;
    v_blocked_by jsonb;
    v_preferences feed.user_preferences;
    v_collectives jsonb;
    v_categories jsonb;
    v_post_types jsonb;
BEGIN
    IF p_user_id IS NULL THEN  -- an anonymous viewer has none of these
        RETURN jsonb_build_object('blocked', '[]'::jsonb, 'muted_authors', '[]'::jsonb,
                                  'muted_collectives', '[]'::jsonb, 'muted_categories', '[]'::jsonb,
                                  'preferred_post_types', '[]'::jsonb, 'collectives', '[]'::jsonb,
                                  'category_affinity', '{}'::jsonb, 'top_post_types', '{}'::jsonb);
    END IF;
    SELECT jsonb_agg(b.blocked_user_id) INTO v_blocked FROM feed.blocks b WHERE b.user_id = p_user_id;
    -- who blocked the viewer: content is hidden both ways
    SELECT jsonb_agg(b.user_id) INTO v_blocked_by FROM feed.blocks b WHERE b.blocked_user_id = p_user_id;
    SELECT * INTO v_preferences FROM feed.user_preferences up WHERE up.user_id = p_user_id;
    SELECT jsonb_agg(cm.collective_id ORDER BY cm.joined_at DESC) INTO v_collectives
    FROM (SELECT m.collective_id, m.joined_at FROM feed.collective_members m WHERE m.user_id = p_user_id
          ORDER BY m.joined_at DESC LIMIT 50) cm;
    SELECT jsonb_object_agg(c.category, c.affinity) INTO v_categories
    FROM (SELECT a.category, feed._decayed_affinity(a.affinity, a.updated_at, p_now, v_half_life) AS affinity
          FROM feed.user_category_affinity a WHERE a.user_id = p_user_id) c;
    SELECT jsonb_object_agg(t.post_type, t.interaction_count) INTO v_post_types
    FROM (SELECT a.post_type, a.interaction_count FROM feed.user_post_type_affinity a
          WHERE a.user_id = p_user_id AND a.interaction_count > 0
          ORDER BY a.interaction_count DESC, a.post_type LIMIT 3) t;
    RETURN jsonb_build_object(
        'blocked', coalesce((SELECT jsonb_agg(DISTINCT o.other)
                             FROM jsonb_array_elements(coalesce(v_blocked, '[]') || coalesce(v_blocked_by, '[]'))
                                  AS o(other)), '[]'),
        'muted_authors', coalesce(to_jsonb(v_preferences.muted_authors), '[]'),
        'muted_collectives', coalesce(to_jsonb(v_preferences.muted_collectives), '[]'),
        'muted_categories', coalesce(to_jsonb(v_preferences.muted_categories), '[]'),
        'preferred_post_types', coalesce(to_jsonb(v_preferences.preferred_post_types), '[]'),
        'collectives', coalesce(v_collectives, '[]'),
        'category_affinity', coalesce(v_categories, '{}'),
        'top_post_types', coalesce(v_post_types, '{}'));
END
$func$;

-------------------------------------------------------------------------------
-- _bigints / _texts: a jsonb array as a SQL array
CREATE OR REPLACE FUNCTION feed._bigints(p_array jsonb)
RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce(array_agg(e::bigint), '{}') FROM jsonb_array_elements_text(coalesce(p_array, '[]')) e
$func$;

CREATE OR REPLACE FUNCTION feed._texts(p_array jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce(array_agg(e), '{}') FROM jsonb_array_elements_text(coalesce(p_array, '[]')) e
$func$;

-------------------------------------------------------------------------------
-- _check_context: validate p_context (22023 naming the key); returns it
-- normalized, with the resolved mode and profile
CREATE OR REPLACE FUNCTION feed._check_context(p_user_id bigint, p_context jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_context jsonb := coalesce(p_context, '{}');
    v_mode text;
    v_profile text;
    v_key text;
BEGIN
    PERFORM feed._check_context_values(p_context);  -- size and typed keys (25_validation.sql)
    IF jsonb_typeof(v_context) <> 'object' THEN
        PERFORM feed._bad_argument('p_context', 'must be a JSON object');
    END IF;
    FOREACH v_key IN ARRAY ARRAY['mode', 'profile', 'device', 'connection'] LOOP
        IF v_context ? v_key AND jsonb_typeof(v_context -> v_key) NOT IN ('string', 'null') THEN
            PERFORM feed._bad_argument('p_context.' || v_key, 'must be a string');
        END IF;
    END LOOP;
    FOREACH v_key IN ARRAY ARRAY['categories', 'post_types'] LOOP
        IF v_context ? v_key AND jsonb_typeof(v_context -> v_key) <> 'null' AND (
               jsonb_typeof(v_context -> v_key) <> 'array'
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_context -> v_key) e WHERE jsonb_typeof(e) <> 'string')) THEN
            PERFORM feed._bad_argument('p_context.' || v_key, 'must be an array of strings');
        END IF;
    END LOOP;
    IF v_context ? 'local_hour' AND jsonb_typeof(v_context -> 'local_hour') <> 'null' AND (
           jsonb_typeof(v_context -> 'local_hour') <> 'number'
           OR (v_context ->> 'local_hour')::numeric NOT IN (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                             17, 18, 19, 20, 21, 22, 23)) THEN
        PERFORM feed._bad_argument('p_context.local_hour', 'must be an integer from 0 to 23');
    END IF;
    FOREACH v_key IN ARRAY ARRAY['include_own_posts', 'in_network_only'] LOOP
        IF v_context ? v_key AND jsonb_typeof(v_context -> v_key) NOT IN ('boolean', 'null') THEN
            PERFORM feed._bad_argument('p_context.' || v_key, 'must be true or false');
        END IF;
    END LOOP;
    IF v_context ? 'exclude_post_ids' AND jsonb_typeof(v_context -> 'exclude_post_ids') <> 'null' THEN
        IF jsonb_typeof(v_context -> 'exclude_post_ids') <> 'array'
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_context -> 'exclude_post_ids') e
                      WHERE jsonb_typeof(e) <> 'number' OR e::text !~ '^-?[0-9]{1,19}$'
                         OR e::text::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807) THEN
            PERFORM feed._bad_argument('p_context.exclude_post_ids', 'must be an array of post ids (integers)');
        END IF;
        IF jsonb_array_length(v_context -> 'exclude_post_ids') > 1000 THEN
            PERFORM feed._bad_argument('p_context.exclude_post_ids', 'at most 1000 post ids per request');
        END IF;
    END IF;

    -- personalization_enabled = false: known viewers get the trending mode
    -- unless the request names a mode
    v_mode := coalesce(v_context ->> 'mode',
                       CASE WHEN p_user_id IS NULL THEN 'chronological'
                            WHEN NOT feed._setting('personalization_enabled')::boolean THEN 'trending'
                            ELSE 'personalized' END);
    IF v_mode NOT IN ('personalized', 'trending', 'chronological', 'random') THEN
        PERFORM feed._bad_argument('p_context.mode', format(
            'unknown mode %L; expected personalized, trending, chronological or random', v_mode));
    END IF;
    v_profile := coalesce(v_context ->> 'profile', 'default');
    IF NOT EXISTS (SELECT 1 FROM feed.ranking_profiles r WHERE r.name = v_profile) THEN
        PERFORM feed._bad_argument('p_context.profile', format(
            'unknown profile %L; SELECT name FROM feed.ranking_profiles lists them', v_profile));
    END IF;
    RETURN v_context || jsonb_build_object('mode', v_mode, 'profile', v_profile);
END
$func$;

-------------------------------------------------------------------------------
-- _feed_candidates: unseen, eligible, not-yet-served candidates for one page.
--
-- Two shapes share one filter:
--   the union of bounded candidate sources, each reading at most ~p_limit
--       rows through an index (following, collective, collaborative, similar,
--       rising, trending, fresh, explore; one per non-personal mode); a post
--       found by several sources keeps the first in that order;
--   p_scan: the bottom of the ladder adds every eligible post in the mode's
--       order, after the bounded finds, cut at p_limit (with in_network_only:
--       every post of the viewer's network, never the whole catalogue);
--   p_repeats: instead, the viewer's posts seen within the cooldown, least
--       recently seen first, cut at p_limit.
-- The random mode and exploration draw uniformly: from a seeded random point
-- in the space of hashint8(post_id) (posts_random_key_idx), the next eligible
-- posts in hash order, wrapping around; each page of a session draws its own
-- point. A post's chance depends neither on its id nor on gaps between ids.
DROP FUNCTION IF EXISTS feed._feed_candidates(bigint, uuid, bigint, integer, text, jsonb, jsonb, integer, boolean,
                                              boolean, timestamptz);
CREATE OR REPLACE FUNCTION feed._feed_candidates(
    p_user_id bigint, p_session_id uuid, p_seed bigint, p_page_no integer, p_mode text,
    p_viewer jsonb, p_context jsonb, p_limit integer, p_scan boolean, p_repeats boolean, p_now timestamptz)
RETURNS TABLE (post_id bigint, author_id bigint, category text, created_at timestamptz, source text,
               collab double precision, last_seen_at timestamptz, sort_key double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- the taste source's search breadth, set below for this call only
SET hnsw.ef_search = 40
-- never a parallel plan (see get_personalized_feed)
SET max_parallel_workers_per_gather = 0
AS $func$
DECLARE
    v_personal boolean := p_mode = 'personalized' AND NOT p_repeats;
    v_cooldown_start timestamptz := p_now - feed._setting_interval('cooldown');
    v_max_duration integer := feed._setting_integer('max_duration_ms');
    v_rising_start timestamptz := p_now - feed._setting_interval('rising_window');
    v_blocked bigint[] := feed._bigints(p_viewer -> 'blocked');
    v_muted_authors bigint[] := feed._bigints(p_viewer -> 'muted_authors');
    v_muted_collectives bigint[] := feed._bigints(p_viewer -> 'muted_collectives');
    v_muted_categories text[] := feed._texts(p_viewer -> 'muted_categories');
    v_collectives bigint[] := feed._bigints(p_viewer -> 'collectives');
    v_only_categories text[] := CASE WHEN jsonb_typeof(p_context -> 'categories') = 'array'
                                     THEN feed._texts(p_context -> 'categories') END;
    v_only_post_types text[] := CASE WHEN jsonb_typeof(p_context -> 'post_types') = 'array'
                                     THEN feed._texts(p_context -> 'post_types') END;
    v_include_own boolean := coalesce((p_context ->> 'include_own_posts')::boolean, false);
    v_excluded bigint[] := feed._bigints(CASE WHEN jsonb_typeof(p_context -> 'exclude_post_ids') = 'array'
                                              THEN p_context -> 'exclude_post_ids' END);
    v_in_network boolean := coalesce((p_context ->> 'in_network_only')::boolean, false) AND p_user_id IS NOT NULL;
    v_following_newest boolean := false;
    v_draw integer;
    v_width bigint;
    v_lo bigint;
    v_hi bigint;
    v_has_recs boolean := false;
    v_live_ids bigint[] := '{}';
    v_live_scores double precision[] := '{}';
    v_similar_ids bigint[] := '{}';
    v_taste_limit integer;
    v_weights_taste boolean;
    -- the value the per-viewer tables are read by: the viewer, or for an
    -- anonymous viewer the session's seed. The candidate statement then names
    -- one value of the distribution column everywhere, which a Citus cluster
    -- needs to run it on one shard. For an anonymous viewer each per-viewer
    -- read is also given "user_id IS NOT DISTINCT FROM p_user_id", which no
    -- row meets, so nothing is read; spelled so, not "p_user_id IS NOT NULL":
    -- a condition that folds to false makes Citus give up the one-shard plan.
    v_key bigint := coalesce(p_user_id, p_seed);
BEGIN
    IF (v_personal OR (p_mode = 'random' AND NOT p_repeats)) AND NOT v_in_network THEN
        -- a uniform draw: v_draw eligible posts from a seeded random point of
        -- the hash space; the window spans about 8 * v_draw posts (from the
        -- planner's row estimate), so one page reads a bounded index range
        v_draw := CASE WHEN p_mode = 'random' THEN p_limit ELSE greatest(p_limit / 4, 4) END;
        SELECT CASE WHEN c.reltuples > 8 * v_draw
                    THEN ceil(4294967296.0 * 8 * v_draw / c.reltuples)::bigint ELSE 4294967296 END
        INTO v_width
        FROM pg_catalog.pg_class c WHERE c.oid = 'feed.posts'::regclass;
        v_lo := floor(feed._uniform(p_seed, p_page_no) * 4294967296.0)::bigint - 2147483648;
        v_hi := v_lo + coalesce(v_width, 4294967296);
    END IF;
    IF v_personal AND p_user_id IS NOT NULL THEN
        v_has_recs := EXISTS (SELECT 1 FROM feed.recommendations r WHERE r.user_id = p_user_id AND r.expires_at > p_now);
        -- the sources that are functions run first, into arrays: each reads
        -- settings and tables of its own, which on a Citus cluster may not
        -- happen inside a statement that runs on a shard
        IF NOT v_has_recs AND to_regprocedure('feed._live_collaborative(bigint,integer)') IS NOT NULL THEN
            SELECT coalesce(array_agg(l.post_id), '{}'), coalesce(array_agg(l.score), '{}')
            INTO v_live_ids, v_live_scores
            FROM feed._live_collaborative(p_user_id, least(p_limit, 1000)) l;
        END IF;
        SELECT coalesce((r.params ->> 'following_newest')::double precision > 0, false),
               coalesce((r.weights ->> 'taste_similarity')::double precision, 0) > 0
        INTO v_following_newest, v_weights_taste
        FROM feed.ranking_profiles r WHERE r.name = p_context ->> 'profile';
        -- following_newest: the following slots are the newest posts of followed authors
        v_following_newest := coalesce(v_following_newest, false);
        -- the similar source only for a profile that weights taste_similarity:
        -- the HNSW search is the costliest read of a page, and a profile that
        -- does not weight taste ranks what it finds by signals that did not
        -- find it (measured: 3 of 29,736 rows of default-profile pages at 1M posts)
        IF coalesce(v_weights_taste, false)
           AND to_regprocedure('feed._taste_candidates(bigint,integer)') IS NOT NULL
           AND EXISTS (SELECT 1 FROM feed.user_taste t WHERE t.user_id = p_user_id AND t.strength > 0) THEN
            -- a third of a source's share, at least 8, searched twice as
            -- broadly: the HNSW search was the costliest part of a page (with
            -- 1M posts, about 1,200 buffers at 24 nearest and ef_search 40,
            -- 600 at 8 and 16); the other sources bring the rest of the page
            v_taste_limit := least(greatest(p_limit / 3, 8), 1000);
            PERFORM set_config('hnsw.ef_search', least(2 * v_taste_limit, 1000)::text, true);
            SELECT coalesce(array_agg(t.post_id), '{}') INTO v_similar_ids
            FROM feed._taste_candidates(p_user_id, v_taste_limit) t;
        END IF;
    END IF;

    RETURN QUERY
    WITH sourced AS (
        -- following: the latest posts of a different sample of followed authors on every page
        SELECT fp.post_id, 'following'::text AS source, 1 AS priority, NULL::double precision AS collab
        FROM (SELECT f.followee_id FROM feed.follows f WHERE f.follower_id = v_key
              ORDER BY feed._uniform(p_seed + p_page_no, f.followee_id) LIMIT greatest(p_limit / 2, 1)) fe
        CROSS JOIN LATERAL (SELECT p.post_id FROM feed.posts p WHERE p.author_id = fe.followee_id
                            ORDER BY p.created_at DESC LIMIT 2) fp
        WHERE v_personal AND p_user_id IS NOT NULL AND NOT v_following_newest
        UNION ALL
        -- following, newest first: the newest posts of (up to 1000) followed authors
        SELECT fn.post_id, 'following', 1, NULL
        FROM (SELECT fp.post_id FROM (SELECT f.followee_id FROM feed.follows f WHERE f.follower_id = v_key
                                      ORDER BY f.followee_id LIMIT 1000) fe
              CROSS JOIN LATERAL (SELECT p.post_id, p.created_at FROM feed.posts p WHERE p.author_id = fe.followee_id
                                  ORDER BY p.created_at DESC LIMIT greatest(3, p_limit / 24)) fp
              ORDER BY fp.created_at DESC, fp.post_id LIMIT p_limit) fn
        WHERE v_personal AND p_user_id IS NOT NULL AND v_following_newest
        UNION ALL
        -- collective: the latest posts of the viewer's collectives
        SELECT cp.post_id, 'collective', 2, NULL
        FROM unnest(v_collectives[1:10]) AS c(collective_id)
        CROSS JOIN LATERAL (SELECT p.post_id FROM feed.posts p WHERE p.collective_id = c.collective_id
                            ORDER BY p.created_at DESC LIMIT greatest(p_limit / 10, 2)) cp
        WHERE v_personal
        UNION ALL
        -- collaborative: precomputed recommendations, else live item-to-item scores
        SELECT r.post_id, 'collaborative', 3, r.score
        FROM (SELECT r.post_id, r.score FROM feed.recommendations r
              WHERE r.user_id = v_key AND r.expires_at > p_now ORDER BY r.score DESC LIMIT p_limit) r
        WHERE v_has_recs
        UNION ALL
        SELECT l.post_id, 'collaborative', 3, l.score
        FROM unnest(v_live_ids, v_live_scores) AS l(post_id, score)
        UNION ALL
        -- similar: nearest posts to the viewer's taste vector
        SELECT s.post_id, 'similar', 4, NULL
        FROM unnest(v_similar_ids) AS s(post_id)
        UNION ALL
        -- trending: the top of the trending order (also the whole 'trending' mode)
        SELECT t.post_id, 'trending', 6, NULL
        FROM (SELECT p.post_id FROM feed.posts p ORDER BY p.trending_score DESC LIMIT p_limit) t
        WHERE v_personal OR (p_mode = 'trending' AND NOT p_repeats)
        UNION ALL
        -- rising: a seeded random sample of the rising window's posts (the newest 256 when more)
        SELECT r.post_id, 'rising', 5, NULL
        FROM (SELECT n.post_id FROM (SELECT p.post_id FROM feed.posts p WHERE p.created_at > v_rising_start
                                     ORDER BY p.created_at DESC LIMIT 256) n
              ORDER BY feed._uniform(p_seed + p_page_no, n.post_id) LIMIT greatest(p_limit / 3, 4)) r
        WHERE v_personal
        UNION ALL
        -- fresh: the newest posts anywhere (also the whole 'chronological' mode)
        SELECT f.post_id, CASE WHEN p_mode = 'chronological' THEN 'chronological' ELSE 'fresh' END, 7, NULL
        FROM (SELECT p.post_id FROM feed.posts p ORDER BY p.created_at DESC LIMIT p_limit) f
        WHERE v_personal OR (p_mode = 'chronological' AND NOT p_repeats)
        UNION ALL
        -- explore / random: the uniform draw (eligible posts only, so that the
        -- draw is uniform over the eligible set)
        SELECT e.post_id, CASE WHEN p_mode = 'random' THEN 'random' ELSE 'explore' END, 8, NULL
        FROM (SELECT w.post_id FROM (
                  (SELECT p.post_id, 0 AS lap, pg_catalog.hashint8(p.post_id) AS h FROM feed.posts p
                   WHERE pg_catalog.hashint8(p.post_id) >= v_lo AND pg_catalog.hashint8(p.post_id) < v_hi
                     AND feed._post_visible_to(p.visibility, p.is_deleted, p.media_ready, p.duration_ms, p.author_id,
                                               p_user_id, v_max_duration)
                     AND (p_user_id IS NULL OR v_include_own OR p.author_id <> p_user_id)
                     AND p.author_id <> ALL (v_blocked) AND p.author_id <> ALL (v_muted_authors)
                     AND (p.collective_id IS NULL OR p.collective_id <> ALL (v_muted_collectives))
                     AND p.category <> ALL (v_muted_categories)
                     AND (v_only_categories IS NULL OR p.category = ANY (v_only_categories))
                     AND (v_only_post_types IS NULL OR p.post_type = ANY (v_only_post_types))
                     AND p.post_id <> ALL (v_excluded)
                     AND NOT EXISTS (SELECT 1 FROM feed.feed_session_items si
                                     WHERE si.viewer_key = v_key AND si.session_id = p_session_id AND si.post_id = p.post_id)
                     AND NOT EXISTS (SELECT 1 FROM feed.hidden_posts h WHERE h.user_id = v_key AND h.user_id IS NOT DISTINCT FROM p_user_id AND h.post_id = p.post_id)
                     AND NOT EXISTS (SELECT 1 FROM feed.seen_posts s WHERE s.user_id = v_key AND s.user_id IS NOT DISTINCT FROM p_user_id AND s.post_id = p.post_id
                                                                     AND s.last_seen_at > v_cooldown_start)
                   ORDER BY pg_catalog.hashint8(p.post_id) LIMIT v_draw)
                  UNION ALL
                  -- the part of the window past the end of the hash space wraps to its start
                  (SELECT p.post_id, 1, pg_catalog.hashint8(p.post_id) FROM feed.posts p
                   WHERE pg_catalog.hashint8(p.post_id) < v_hi - 4294967296
                     AND feed._post_visible_to(p.visibility, p.is_deleted, p.media_ready, p.duration_ms, p.author_id,
                                               p_user_id, v_max_duration)
                     AND (p_user_id IS NULL OR v_include_own OR p.author_id <> p_user_id)
                     AND p.author_id <> ALL (v_blocked) AND p.author_id <> ALL (v_muted_authors)
                     AND (p.collective_id IS NULL OR p.collective_id <> ALL (v_muted_collectives))
                     AND p.category <> ALL (v_muted_categories)
                     AND (v_only_categories IS NULL OR p.category = ANY (v_only_categories))
                     AND (v_only_post_types IS NULL OR p.post_type = ANY (v_only_post_types))
                     AND p.post_id <> ALL (v_excluded)
                     AND NOT EXISTS (SELECT 1 FROM feed.feed_session_items si
                                     WHERE si.viewer_key = v_key AND si.session_id = p_session_id AND si.post_id = p.post_id)
                     AND NOT EXISTS (SELECT 1 FROM feed.hidden_posts h WHERE h.user_id = v_key AND h.user_id IS NOT DISTINCT FROM p_user_id AND h.post_id = p.post_id)
                     AND NOT EXISTS (SELECT 1 FROM feed.seen_posts s WHERE s.user_id = v_key AND s.user_id IS NOT DISTINCT FROM p_user_id AND s.post_id = p.post_id
                                                                     AND s.last_seen_at > v_cooldown_start)
                   ORDER BY pg_catalog.hashint8(p.post_id) LIMIT v_draw)) w
              ORDER BY w.lap, w.h LIMIT v_draw) e
        WHERE v_lo IS NOT NULL
        UNION ALL
        -- bottom of the ladder: every post (older and out-of-network included)
        SELECT p.post_id,
               CASE p_mode WHEN 'personalized' THEN 'fresh' ELSE p_mode END, 9, NULL
        FROM feed.posts p
        WHERE p_scan AND NOT p_repeats AND NOT v_in_network
        UNION ALL
        -- bottom of the ladder in the viewer's network only: every post of
        -- followed authors and of the viewer's collectives
        SELECT n.post_id, CASE p_mode WHEN 'personalized' THEN 'following' ELSE p_mode END, 9, NULL
        FROM (SELECT p.post_id FROM feed.follows f JOIN feed.posts p ON p.author_id = f.followee_id
              WHERE f.follower_id = v_key
              UNION
              SELECT p.post_id FROM feed.posts p WHERE p.collective_id = ANY (v_collectives)) n
        WHERE p_scan AND NOT p_repeats AND v_in_network
        UNION ALL
        -- controlled repeats: posts seen within the cooldown
        SELECT s.post_id, 'repeat', 10, NULL
        FROM feed.seen_posts s
        WHERE p_repeats AND s.user_id = v_key AND s.user_id IS NOT DISTINCT FROM p_user_id AND s.last_seen_at > v_cooldown_start
    ), candidates AS (
        SELECT DISTINCT ON (c.post_id) c.post_id, c.source, c.priority, c.collab
        FROM sourced c
        ORDER BY c.post_id, c.priority, c.collab DESC NULLS LAST
    )
    SELECT c.post_id, p.author_id, p.category, p.created_at, c.source, c.collab, s.last_seen_at,
           CASE WHEN p_repeats THEN extract(epoch FROM s.last_seen_at)
                WHEN p_mode = 'chronological' THEN -extract(epoch FROM p.created_at)
                WHEN p_mode = 'random' THEN feed._uniform(p_seed, c.post_id)
                ELSE -p.trending_score END
    FROM candidates c
    JOIN feed.posts p ON p.post_id = c.post_id
    LEFT JOIN feed.seen_posts s
           ON s.user_id = v_key AND s.user_id IS NOT DISTINCT FROM p_user_id AND s.post_id = c.post_id AND s.last_seen_at > v_cooldown_start
    WHERE feed._post_visible_to(p.visibility, p.is_deleted, p.media_ready, p.duration_ms, p.author_id,
                                p_user_id, v_max_duration)
      AND (p_user_id IS NULL OR v_include_own OR p.author_id <> p_user_id)
      AND p.author_id <> ALL (v_blocked)
      AND p.author_id <> ALL (v_muted_authors)
      AND (p.collective_id IS NULL OR p.collective_id <> ALL (v_muted_collectives))
      AND p.category <> ALL (v_muted_categories)
      AND (v_only_categories IS NULL OR p.category = ANY (v_only_categories))
      AND (v_only_post_types IS NULL OR p.post_type = ANY (v_only_post_types))
      AND p.post_id <> ALL (v_excluded)
      AND (NOT v_in_network
           OR p.collective_id = ANY (v_collectives)
           OR EXISTS (SELECT 1 FROM feed.follows f WHERE f.follower_id = v_key AND f.followee_id = p.author_id))
      AND NOT EXISTS (SELECT 1 FROM feed.feed_session_items si
                      WHERE si.viewer_key = v_key AND si.session_id = p_session_id AND si.post_id = c.post_id)
      AND NOT EXISTS (SELECT 1 FROM feed.hidden_posts h WHERE h.user_id = v_key AND h.user_id IS NOT DISTINCT FROM p_user_id AND h.post_id = c.post_id)
      AND (s.post_id IS NOT NULL) = p_repeats
    -- at the bottom of the ladder the bounded sources' finds come first, then the scan's
    ORDER BY c.priority >= 9, 8, 1
    LIMIT CASE WHEN p_scan THEN p_limit END;
END
$func$;

-------------------------------------------------------------------------------
-- _tag_affinities: the viewer's affinities for the tags of p_post_ids,
-- decayed to p_at, as {tag: affinity}; tags without a row are absent. Probes
-- (viewer, tag) keys only, so a viewer's whole tag set is never read. Plain
-- statements, the setting read first: a Citus cluster runs each on the
-- viewer's shard or a reference copy. The feed and explain_score read it once
-- per call and match every post from it (_tag_matches, _tag_reasons).
CREATE OR REPLACE FUNCTION feed._tag_affinities(p_user_id bigint, p_post_ids bigint[], p_at timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_tags text[];
    v_half_life double precision;
    v_affinities jsonb;
BEGIN
    IF p_user_id IS NULL THEN
        RETURN '{}';
    END IF;
    v_tags := ARRAY(SELECT DISTINCT t.tag FROM feed.posts p CROSS JOIN LATERAL unnest(p.tags) AS t(tag)
                    WHERE p.post_id = ANY (p_post_ids));
    IF cardinality(v_tags) = 0 THEN
        RETURN '{}';
    END IF;
    v_half_life := extract(epoch FROM feed._setting_interval('category_affinity_half_life'));
    SELECT jsonb_object_agg(a.tag, feed._decayed_affinity(a.affinity, a.updated_at, p_at, v_half_life))
    INTO v_affinities
    FROM feed.user_tag_affinity a
    WHERE a.user_id = p_user_id AND a.tag = ANY (v_tags);
    RETURN coalesce(v_affinities, '{}');
END
$func$;
DROP FUNCTION IF EXISTS feed._tag_affinities(bigint, text[], timestamptz, double precision);

-------------------------------------------------------------------------------
-- _tag_matches: the viewer's affinities for tags of a post that count in
-- tag_affinity: the p_k strongest (largest |decayed affinity|, ties by tag)
-- among the tags the viewer has a non-zero affinity for, looked up in
-- p_affinities (_tag_affinities). A tag absent from it counts as 0. Reads no
-- table. No SET search_path, so that it inlines into _score_posts (a SET
-- clause makes it a call per candidate); every name is schema-qualified.
CREATE OR REPLACE FUNCTION feed._tag_matches(p_tags text[], p_affinities jsonb, p_k integer)
RETURNS TABLE (tag text, affinity double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $func$
    SELECT m.tag, m.affinity
    FROM (SELECT DISTINCT t.tag, (p_affinities OPERATOR(pg_catalog.->>) t.tag)::pg_catalog.float8 AS affinity
          FROM pg_catalog.unnest(p_tags) AS t(tag)
          WHERE p_affinities OPERATOR(pg_catalog.?) t.tag) m
    WHERE m.affinity OPERATOR(pg_catalog.<>) 0::pg_catalog.float8
    ORDER BY pg_catalog.abs(m.affinity) DESC, m.tag COLLATE pg_catalog."C"
    LIMIT p_k
$func$;
-- the form that read the table itself, inside the feed's statements: a
-- Citus cluster runs those on a shard, where it could not read the table
DROP FUNCTION IF EXISTS feed._tag_matches(bigint, text[], timestamptz, double precision, integer);

-------------------------------------------------------------------------------
-- _tag_top_k: a profile's params.tag_top_k (default 3) as a count of at least 1
CREATE OR REPLACE FUNCTION feed._tag_top_k(p_params jsonb)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT least(greatest(floor(coalesce((p_params ->> 'tag_top_k')::double precision, 3)), 1), 1000)::integer
$func$;

-------------------------------------------------------------------------------
-- _tag_reasons: the tags behind a post's tag_affinity component ('tags',
-- strongest first) and the viewer's decayed affinity for each
-- ('tag_affinities'), from the viewer's affinities read by _tag_affinities;
-- '{}' when none matched. Reads no table, so the feed can build it for every
-- candidate in one statement before the page is written.
CREATE OR REPLACE FUNCTION feed._tag_reasons(p_tags text[], p_affinities jsonb, p_k integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE WHEN count(*) > 0
                THEN jsonb_build_object(
                    'tags', jsonb_agg(m.tag ORDER BY abs(m.affinity) DESC, m.tag COLLATE pg_catalog."C"),
                    'tag_affinities', jsonb_object_agg(m.tag, round(m.affinity::numeric, 6)))
                ELSE '{}'::jsonb END
    FROM feed._tag_matches(p_tags, p_affinities, p_k) m
$func$;
-- the form that read tables per page row, inside the statement writing the
-- page: a Citus cluster cannot run a query from inside another one there
DROP FUNCTION IF EXISTS feed._tag_reasons(bigint, bigint, jsonb, jsonb, timestamptz);

-------------------------------------------------------------------------------
-- _score_posts: every component for each candidate and the profile's
-- weighted sum (reasons are built later, for the rows that make the page).
-- Weights, parameters and the request's context are unpacked once into
-- variables: per row there is only arithmetic and a few primary-key probes.
-- p_tag_affinities: the viewer's tag affinities for these posts
-- (_tag_affinities), read by the caller, which also builds tag reasons from
-- them; '{}' when the profile does not weight tag_affinity.
DROP FUNCTION IF EXISTS feed._score_posts(bigint, jsonb, text, jsonb, bigint[], text[], double precision[],
                                          timestamptz);
CREATE OR REPLACE FUNCTION feed._score_posts(
    p_user_id bigint, p_viewer jsonb, p_profile text, p_context jsonb,
    p_post_ids bigint[], p_sources text[], p_collab double precision[], p_now timestamptz,
    p_tag_affinities jsonb)
RETURNS TABLE (post_id bigint, author_id bigint, source text, score double precision, components double precision[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    w jsonb;
    pr jsonb;
    -- weights
    w_trending double precision;  w_recency double precision;  w_social double precision;
    w_collective double precision;  w_author double precision;  w_author_recency double precision;
    w_engagement double precision;  w_post_type double precision;  w_preferred double precision;
    w_category double precision;  w_quality double precision;  w_context double precision;
    w_novelty double precision;  w_taste double precision;  w_collab double precision;
    w_viewer_engagement double precision;  w_tag double precision;
    -- parameters
    recency_points double precision;  recency_tau_hours double precision;  follow_points double precision;
    collective_points double precision;  author_points double precision;  author_cap double precision;
    engagement_scale double precision;  engagement_cap double precision;  post_type_points double precision;
    post_type_cap double precision;  preferred_type_points double precision;  tag_top_k integer;
    -- the viewer and the request
    v_taste @extschema:vector@.vector;
    v_recent_window double precision := extract(epoch FROM feed._setting_interval('author_recency_window'));
    v_connection_slow boolean := lower(coalesce(p_context ->> 'connection', ''))
                                 IN ('slow', '2g', '3g', 'slow-2g', 'cellular', 'metered');
    v_big_screen boolean := lower(coalesce(p_context ->> 'device', '')) IN ('tv', 'desktop');
    v_night boolean := (p_context ->> 'local_hour')::integer >= 22 OR (p_context ->> 'local_hour')::integer < 6;
    v_context_factors integer;
    v_preferred text[] := feed._texts(p_viewer -> 'preferred_post_types');
    v_collectives bigint[] := feed._bigints(p_viewer -> 'collectives');
    v_top_types jsonb := coalesce(p_viewer -> 'top_post_types', '{}');
    v_categories jsonb := coalesce(p_viewer -> 'category_affinity', '{}');
    -- the viewer's moving averages (feed.user_signals): how much each kind of
    -- engagement weighs in viewer_engagement
    v_like_rate double precision := 0;
    v_comment_rate double precision := 0;
    v_share_rate double precision := 0;
    v_watch_ratio double precision := 0;
BEGIN
    SELECT r.weights, r.params INTO w, pr FROM feed.ranking_profiles r WHERE r.name = p_profile;
    w_trending := coalesce((w ->> 'trending')::double precision, 0);
    w_recency := coalesce((w ->> 'recency')::double precision, 0);
    w_social := coalesce((w ->> 'social_tie')::double precision, 0);
    w_collective := coalesce((w ->> 'collective')::double precision, 0);
    w_author := coalesce((w ->> 'author_affinity')::double precision, 0);
    w_author_recency := coalesce((w ->> 'author_recency')::double precision, 0);
    w_engagement := coalesce((w ->> 'engagement')::double precision, 0);
    w_post_type := coalesce((w ->> 'post_type')::double precision, 0);
    w_preferred := coalesce((w ->> 'preferred_type')::double precision, 0);
    w_category := coalesce((w ->> 'category_affinity')::double precision, 0);
    w_quality := coalesce((w ->> 'creator_quality')::double precision, 0);
    w_context := coalesce((w ->> 'context')::double precision, 0);
    w_novelty := coalesce((w ->> 'novelty')::double precision, 0);
    w_taste := coalesce((w ->> 'taste_similarity')::double precision, 0);
    w_collab := coalesce((w ->> 'collaborative')::double precision, 0);
    w_viewer_engagement := coalesce((w ->> 'viewer_engagement')::double precision, 0);
    w_tag := coalesce((w ->> 'tag_affinity')::double precision, 0);
    recency_points := coalesce((pr ->> 'recency_points')::double precision, 1);
    recency_tau_hours := coalesce((pr ->> 'recency_tau_hours')::double precision, 24);
    follow_points := coalesce((pr ->> 'follow_points')::double precision, 1);
    collective_points := coalesce((pr ->> 'collective_points')::double precision, 1);
    author_points := coalesce((pr ->> 'author_points')::double precision, 0.125);
    author_cap := coalesce((pr ->> 'author_cap')::double precision, 1);
    engagement_scale := coalesce((pr ->> 'engagement_scale')::double precision, 0.02);
    engagement_cap := coalesce((pr ->> 'engagement_cap')::double precision, 50);
    post_type_points := coalesce((pr ->> 'post_type_points')::double precision, 0.1);
    post_type_cap := coalesce((pr ->> 'post_type_cap')::double precision, 'Infinity');
    preferred_type_points := coalesce((pr ->> 'preferred_type_points')::double precision, 1);
    tag_top_k := feed._tag_top_k(pr);
    IF w_viewer_engagement <> 0 AND p_user_id IS NOT NULL THEN
        SELECT us.like_rate, us.comment_rate, us.share_rate, coalesce(us.watch_ratio, 0)
        INTO v_like_rate, v_comment_rate, v_share_rate, v_watch_ratio
        FROM feed.user_signals us WHERE us.user_id = p_user_id;
        v_like_rate := coalesce(v_like_rate, 0);
        v_comment_rate := coalesce(v_comment_rate, 0);
        v_share_rate := coalesce(v_share_rate, 0);
        v_watch_ratio := coalesce(v_watch_ratio, 0);
    END IF;
    v_context_factors := v_connection_slow::int + v_big_screen::int + coalesce(v_night, false)::int;
    IF w_taste <> 0 THEN
        SELECT t.taste INTO v_taste FROM feed.user_taste t WHERE t.user_id = p_user_id AND t.strength > 0;
    END IF;

    RETURN QUERY
    WITH c AS (
        SELECT u.post_id, u.source, u.collab, u.ord FROM unnest(p_post_ids, p_sources, p_collab)
            WITH ORDINALITY AS u(post_id, source, collab, ord)
    ), raw AS MATERIALIZED (  -- each component computed once: the score and the components array both use it
        SELECT c.post_id, p.author_id, c.source, c.ord,
               p.trending_score AS trending,
               -- exp() of less than about -745 underflows (an error in PostgreSQL): clamp
               recency_points * exp(-least(greatest(extract(epoch FROM p_now - p.created_at), 0) / 3600.0
                                           / recency_tau_hours, 700)) AS recency,
               CASE WHEN w_social <> 0 AND EXISTS (SELECT 1 FROM feed.follows f WHERE f.follower_id = p_user_id
                                                                                 AND f.followee_id = p.author_id)
                    THEN follow_points ELSE 0 END AS social_tie,
               CASE WHEN p.collective_id = ANY (v_collectives) THEN collective_points ELSE 0 END AS collective,
               least(author_points * coalesce(a.like_count + a.praise_count + a.trophy_count, 0), author_cap)
                 AS author_affinity,
               CASE WHEN a.last_positive_at IS NULL OR v_recent_window <= 0 THEN 0
                    ELSE greatest(0, 1 - extract(epoch FROM p_now - a.last_positive_at) / v_recent_window) END
                 AS author_recency,
               least(p.like_count + 2 * p.praise_count + 5 * p.trophy_count + 0.5 * p.comment_count, engagement_cap)
                 * engagement_scale AS engagement,
               CASE WHEN v_top_types ? p.post_type
                    THEN least(post_type_points * (v_top_types ->> p.post_type)::double precision, post_type_cap)
                    ELSE 0 END AS post_type,
               preferred_type_points * (p.post_type = ANY (v_preferred))::int::double precision AS preferred_type,
               coalesce((v_categories ->> p.category)::double precision, 0) AS category_affinity,
               coalesce(q.quality, 0.5) AS creator_quality,
               -- context: the mean of the factors the request gives (0.5 when none)
               CASE WHEN v_context_factors = 0 THEN 0.5 ELSE (
                   CASE WHEN v_connection_slow THEN 1 - least(coalesce(p.duration_ms, 0) / 60000.0, 1) ELSE 0 END
                 + CASE WHEN v_big_screen THEN CASE WHEN p.duration_ms IS NULL THEN 0.5
                                                    ELSE least(p.duration_ms / 60000.0, 1) END ELSE 0 END
                 + CASE WHEN v_night THEN 1 - least(coalesce(p.duration_ms, 0) / 120000.0, 1) ELSE 0 END
               ) / v_context_factors END::double precision AS context,
               1 - least(1, coalesce(a.like_count + a.praise_count + a.trophy_count + a.comment_count
                                     + a.share_count + a.save_count, 0) / 10.0) AS novelty,
               CASE WHEN v_taste IS NOT NULL AND p.embedding IS NOT NULL
                    THEN coalesce(nullif(1 - (p.embedding OPERATOR(@extschema:vector@.<=>) v_taste), 'NaN'), 0) ELSE 0 END AS taste_similarity,
               CASE WHEN c.collab IS NOT NULL THEN c.collab
                    WHEN w_collab = 0 THEN 0
                    ELSE coalesce((SELECT r.score FROM feed.recommendations r
                                   WHERE r.user_id = p_user_id AND r.post_id = c.post_id AND r.expires_at > p_now), 0)
               END AS collaborative,
               -- the post's engagement rates, each weighted by how much the viewer
               -- engages that way (user_signals): sum(rate_v * rate_p) / sum(rate_v)
               CASE WHEN v_like_rate + v_comment_rate + v_share_rate
                         + CASE WHEN p.watch_count > 0 THEN v_watch_ratio ELSE 0 END > 0
                    THEN (v_like_rate * least(p.like_count::double precision / greatest(p.view_count, 1), 1)
                          + v_comment_rate * least(p.comment_count::double precision / greatest(p.view_count, 1), 1)
                          + v_share_rate * least(p.share_count::double precision / greatest(p.view_count, 1), 1)
                          + CASE WHEN p.watch_count > 0
                                 THEN v_watch_ratio * least(p.watch_ratio_sum / p.watch_count, 1) ELSE 0 END)
                         / (v_like_rate + v_comment_rate + v_share_rate
                            + CASE WHEN p.watch_count > 0 THEN v_watch_ratio ELSE 0 END)
                    ELSE 0 END AS viewer_engagement,
               -- the mean of the viewer's decayed affinities for the post's
               -- tags, over its tag_top_k strongest (untagged: 0)
               CASE WHEN w_tag = 0 OR p_user_id IS NULL OR coalesce(cardinality(p.tags), 0) = 0 THEN 0
                    ELSE coalesce((SELECT sum(m.affinity)
                                   FROM feed._tag_matches(p.tags, p_tag_affinities, tag_top_k) m), 0)
                         / least(tag_top_k, cardinality(p.tags)) END AS tag_affinity
        FROM c
        JOIN feed.posts p ON p.post_id = c.post_id
        LEFT JOIN feed.user_author_affinity a ON a.user_id = p_user_id AND a.author_id = p.author_id
        LEFT JOIN feed.creator_quality q ON q.author_id = p.author_id
    )
    SELECT raw.post_id, raw.author_id, raw.source,
           w_trending * raw.trending + w_recency * raw.recency + w_social * raw.social_tie
         + w_collective * raw.collective + w_author * raw.author_affinity + w_author_recency * raw.author_recency
         + w_engagement * raw.engagement + w_post_type * raw.post_type + w_preferred * raw.preferred_type
         + w_category * raw.category_affinity + w_quality * raw.creator_quality + w_context * raw.context
         + w_novelty * raw.novelty + w_taste * raw.taste_similarity + w_collab * raw.collaborative
         + w_viewer_engagement * raw.viewer_engagement + w_tag * raw.tag_affinity,
           ARRAY[raw.trending, raw.recency, raw.social_tie, raw.collective, raw.author_affinity, raw.author_recency,
                 raw.engagement, raw.post_type, raw.preferred_type, raw.category_affinity, raw.creator_quality,
                 raw.context, raw.novelty, raw.taste_similarity, raw.collaborative, raw.viewer_engagement,
                 raw.tag_affinity]
    FROM raw
    ORDER BY raw.ord;
END
$func$;

-------------------------------------------------------------------------------
-- _reasons: why each post of a page is there: profile, source, each
-- weighted component's value and contribution, the profile's formula score
-- (formula_score, also base_score) and, separately, each multiplier applied
-- after it (score = formula_score x every multiplier). For the rows p_rows of
-- the candidate arrays; p_components holds one row per candidate, a value per
-- name of p_names (both callers pass feed._components()).
-- A SQL-standard body, so that the planner inlines it into the
-- statement writing the page: called as a function (a query of its own, once
-- per row or even once per page) it cost 0.3 to 1 ms a page. Its names are
-- bound when it is created, under the install's pinned search_path, so it
-- needs no SET clause of its own.
DROP FUNCTION IF EXISTS feed._reasons(text, jsonb, text, text, double precision[], double precision, jsonb);
CREATE OR REPLACE FUNCTION feed._reasons(
    p_profile text, p_weights jsonb, p_mode text, p_names text[], p_rows integer[], p_sources text[],
    p_components double precision[], p_base_scores double precision[], p_multipliers jsonb[])
RETURNS TABLE (row_no integer, reasons jsonb)
LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT r.row_no, pg_catalog.jsonb_build_object(
        'profile', p_profile,
        'mode', p_mode,
        'source', p_sources[r.row_no],
        'formula_score', p_base_scores[r.row_no],
        'base_score', p_base_scores[r.row_no],
        'components', coalesce(c.components, '{}'::jsonb),
        'contributions', coalesce(c.contributions, '{}'::jsonb),
        'multipliers', p_multipliers[r.row_no])
    FROM pg_catalog.unnest(p_rows) AS r(row_no)
    CROSS JOIN LATERAL (
        SELECT pg_catalog.jsonb_object_agg(n.name, pg_catalog.round(p_components[r.row_no][n.i]::numeric, 6))
                   AS components,
               pg_catalog.jsonb_object_agg(n.name, pg_catalog.round(
                   ((p_weights OPERATOR(pg_catalog.->>) n.name)::double precision
                    OPERATOR(pg_catalog.*) p_components[r.row_no][n.i])::numeric, 6)) AS contributions
        FROM pg_catalog.unnest(p_names) WITH ORDINALITY AS n(name, i)
        WHERE coalesce((p_weights OPERATOR(pg_catalog.->>) n.name)::double precision, 0) OPERATOR(pg_catalog.<>) 0) c;
END;

-------------------------------------------------------------------------------
-- _quota_counts: slots per source for a page (largest remainder), plus the
-- exploration slots: floor(size * epsilon), one more with the fraction's odds
CREATE OR REPLACE FUNCTION feed._quota_counts(
    p_quotas jsonb, p_page_size integer, p_epsilon double precision, p_seed bigint, p_page_no integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    WITH q AS (
        SELECT key AS source, value::double precision * p_page_size AS exact
        FROM jsonb_each_text(coalesce(p_quotas, '{}'))
    ), shares AS (
        SELECT source, floor(exact)::int AS base, exact - floor(exact) AS remainder FROM q
    ), bonus AS (
        SELECT source, base + (row_number() OVER (ORDER BY remainder DESC, source)
                               <= greatest(least(round((SELECT sum(exact) FROM q))::int, p_page_size)
                                           - (SELECT coalesce(sum(base), 0) FROM shares), 0))::int AS slots
        FROM shares
    )
    SELECT coalesce((SELECT jsonb_object_agg(source, slots) FROM bonus), '{}')
        || jsonb_build_object('explore',
               floor(p_page_size * p_epsilon)::int
               + (feed._uniform(p_seed, -p_page_no) < p_page_size * p_epsilon - floor(p_page_size * p_epsilon))::int)
$func$;

-------------------------------------------------------------------------------
-- _pick: which candidates make a page: p_want of them, in preference order
-- (the arrays' order), keeping at most p_author_cap rows per author and
-- p_category_cap rows per category while other candidates allow it. Rows
-- already on the page (p_fixed_*) count against the caps. Passes: both caps;
-- the author cap relaxed; then, when the candidates within the category cap
-- run out, the category cap raised one row at a time (so the excess spreads
-- over the categories instead of flooding one), author cap first kept, then
-- relaxed. Returns the picked positions, ascending.
CREATE OR REPLACE FUNCTION feed._pick(
    p_authors bigint[], p_categories text[], p_fixed_authors bigint[], p_fixed_categories text[],
    p_want integer, p_author_cap integer, p_category_cap integer)
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_n integer := coalesce(cardinality(p_authors), 0);
    v_taken boolean[] := array_fill(false, ARRAY[greatest(v_n, 1)]);
    v_by_author jsonb := '{}';
    v_by_category jsonb := '{}';
    v_count integer := 0;
    v_result integer[] := '{}';
    v_a integer;
    v_c integer;
    v_category_cap integer := p_category_cap;
    v_author_relaxed boolean;
    i integer;
    v_pass integer := 0;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_fixed_authors), 0) LOOP
        v_by_author := v_by_author || jsonb_build_object(p_fixed_authors[i]::text,
                           coalesce((v_by_author ->> p_fixed_authors[i]::text)::integer, 0) + 1);
        v_by_category := v_by_category || jsonb_build_object(p_fixed_categories[i],
                           coalesce((v_by_category ->> p_fixed_categories[i])::integer, 0) + 1);
    END LOOP;
    WHILE v_count < least(p_want, v_n) LOOP
        v_pass := v_pass + 1;
        -- odd passes keep the author cap, even ones relax it; every two
        -- passes after the first two raise the category cap by one
        v_author_relaxed := v_pass % 2 = 0;
        v_category_cap := p_category_cap + greatest((v_pass - 1) / 2, 0);
        FOR i IN 1 .. v_n LOOP
            EXIT WHEN v_count >= p_want;
            CONTINUE WHEN v_taken[i];
            v_a := coalesce((v_by_author ->> p_authors[i]::text)::integer, 0);
            v_c := coalesce((v_by_category ->> p_categories[i])::integer, 0);
            IF (v_author_relaxed OR v_a < p_author_cap) AND v_c < v_category_cap THEN
                v_taken[i] := true;
                v_count := v_count + 1;
                v_result := v_result || i;
                v_by_author := v_by_author || jsonb_build_object(p_authors[i]::text, v_a + 1);
                v_by_category := v_by_category || jsonb_build_object(p_categories[i], v_c + 1);
            END IF;
        END LOOP;
    END LOOP;
    RETURN ARRAY(SELECT x FROM unnest(v_result) AS x ORDER BY x);
END
$func$;

-------------------------------------------------------------------------------
-- get_personalized_feed: one page of a viewer's feed (contract §3.1, §4)
CREATE OR REPLACE FUNCTION feed.get_personalized_feed(
    p_user_id bigint, p_page_size integer DEFAULT 12, p_page_after text DEFAULT NULL,
    p_context jsonb DEFAULT '{}')
RETURNS TABLE (rank integer, post_id bigint, author_id bigint, score double precision, source text,
               is_repeat boolean, reasons jsonb, next_cursor text)
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- the statements inside are large and their shape never depends on the
-- values: planning them once per connection beats re-planning every call
SET plan_cache_mode = force_generic_plan
-- never a parallel plan: a page reads a few hundred rows, and starting
-- workers costs more than that (measured at 1M posts: a generic plan that put
-- the explore draw's wrap-around scan under Gather Merge spent 5 ms of an
-- 8 ms candidate statement starting workers that found nothing)
SET max_parallel_workers_per_gather = 0
-- experiments override settings for this call only: set_config(..., true)
-- inside a function with its own SET of the variable is undone at its exit
SET pgfeed.setting_overrides = '{}'
AS $func$
DECLARE
    v_now timestamptz := now();
    v_context jsonb;
    v_experiments jsonb;
    v_experiment_reasons jsonb;
    v_session feed.feed_sessions;
    v_session_id uuid;
    v_expires_at timestamptz;
    v_tag_affinities jsonb;
    v_tag_reasons jsonb;
    -- settings read before the statements that use them: on a Citus cluster a
    -- statement runs on a shard, where reading the settings table is refused
    -- (after the session's experiment overrides are in force)
    v_session_lifetime interval;
    v_max_duration integer;
    v_page_no integer;
    v_cursor record;
    v_viewer jsonb;
    v_profile feed.ranking_profiles;
    v_level integer := 0;
    v_limit integer;
    v_want integer;
    v_ids bigint[];
    v_authors bigint[];
    v_categories text[];
    v_created timestamptz[];
    v_sources text[];
    v_collab double precision[];
    v_unseen integer;
    v_cap integer;
    v_category_cap integer;
    v_max_repeats integer;
    v_protected integer;
    v_rep_ids bigint[];
    v_rep_authors bigint[];
    v_rep_categories text[];
    v_rep_seen timestamptz[];
    v_scores double precision[];
    v_diversity double precision[];
    v_components double precision[];  -- one row of feed._components() per candidate
    v_multipliers jsonb[];
    v_tag_component integer := array_position(feed._components(), 'tag_affinity');
    v_pick integer[];
    v_rep_pick integer[];
    v_repeats integer := 0;
    v_fresh integer;
    v_top integer;
    v_excluded jsonb;
    v_epsilon double precision;
    v_quotas jsonb;
    v_next_cursor text;
BEGIN
    PERFORM feed._authorize_viewer(p_user_id, p_anonymous_allowed => true);
    IF p_page_size IS NULL OR p_page_size < 1 OR p_page_size > 100 THEN
        PERFORM feed._bad_argument('p_page_size', format('must be between 1 and 100, got %s',
                                   coalesce(p_page_size::text, 'null')));
    END IF;
    IF p_page_after IS NULL THEN
        -- the viewer's variants of the running experiments (70_experiments.sql):
        -- a variant's profile unless the request names one, and its settings
        v_experiments := feed._session_experiments(p_user_id, p_context);
        IF v_experiments ->> 'profile' IS NOT NULL THEN
            p_context := coalesce(p_context, '{}') || jsonb_build_object('profile', v_experiments ->> 'profile');
        END IF;
        PERFORM set_config('pgfeed.setting_overrides', coalesce(v_experiments -> 'settings', '{}')::text, true);
    END IF;
    v_context := feed._check_context(p_user_id, p_context);

    -- the session: a new one, or the one the cursor continues
    IF p_page_after IS NULL THEN
        -- values computed first, then a plain INSERT ... VALUES: Citus routes
        -- that to one shard, where it cannot plan an INSERT ... SELECT
        v_session_id := gen_random_uuid();
        v_session_lifetime := feed._setting_interval('session_lifetime');
        v_expires_at := v_now + v_session_lifetime;
        INSERT INTO feed.feed_sessions (viewer_key, session_id, user_id, mode, profile, context, seed, expires_at,
                                        experiments)
        VALUES (coalesce(p_user_id, hashtextextended(v_session_id::text, 0)), v_session_id, p_user_id,
                v_context ->> 'mode', v_context ->> 'profile', v_context,
                hashtextextended(v_session_id::text, 0), v_expires_at,
                coalesce(v_experiments -> 'experiments', '{}'))
        RETURNING * INTO v_session;
        v_page_no := 1;
    ELSE
        v_cursor := feed._cursor_decode(p_page_after);
        -- found by its key: the viewer, or for an anonymous session its seed
        -- (which the cursor's session id gives)
        SELECT * INTO v_session FROM feed.feed_sessions s
        WHERE s.viewer_key = coalesce(p_user_id, hashtextextended(v_cursor.session_id::text, 0))
          AND s.session_id = v_cursor.session_id
        FOR UPDATE;
        IF NOT FOUND AND EXISTS (SELECT 1 FROM feed.feed_sessions s WHERE s.session_id = v_cursor.session_id) THEN
            PERFORM feed._bad_argument('p_page_after', 'the cursor belongs to another viewer');
        END IF;
        IF NOT FOUND OR v_session.expires_at < v_now THEN
            PERFORM feed._bad_argument('p_page_after', 'the session has expired; start a new one with NULL');
        END IF;
        IF v_session.user_id IS DISTINCT FROM p_user_id THEN
            PERFORM feed._bad_argument('p_page_after', 'the cursor belongs to another viewer');
        END IF;
        -- the session keeps the variants it started with
        PERFORM set_config('pgfeed.setting_overrides', feed._variant_settings(v_session.experiments)::text, true);
        v_session_lifetime := feed._setting_interval('session_lifetime');
        v_max_duration := feed._setting_integer('max_duration_ms');
        v_page_no := v_cursor.page_no;
        IF v_page_no > v_session.pages_served + 1 OR v_page_no < 2 THEN
            PERFORM feed._bad_argument('p_page_after', 'invalid cursor (page out of sequence)');
        END IF;
        -- a session keeps its first context; exclude_post_ids given on a later
        -- page join the session's (this page and every later one)
        v_excluded := CASE WHEN jsonb_typeof(v_context -> 'exclude_post_ids') = 'array'
                                AND jsonb_array_length(v_context -> 'exclude_post_ids') > 0
                           THEN (SELECT jsonb_agg(DISTINCT e ORDER BY e) FROM (
                                     SELECT e FROM jsonb_array_elements(v_context -> 'exclude_post_ids') e
                                     UNION
                                     SELECT e FROM jsonb_array_elements(CASE WHEN jsonb_typeof(
                                         v_session.context -> 'exclude_post_ids') = 'array'
                                         THEN v_session.context -> 'exclude_post_ids' ELSE '[]' END) e) x) END;
        v_context := v_session.context;
        IF v_excluded IS NOT NULL AND v_excluded IS DISTINCT FROM v_context -> 'exclude_post_ids' THEN
            v_context := v_context || jsonb_build_object('exclude_post_ids', v_excluded);
        END IF;
        UPDATE feed.feed_sessions s SET expires_at = v_now + v_session_lifetime,
                                        context = v_context
        WHERE s.viewer_key = v_session.viewer_key AND s.session_id = v_session.session_id;
        IF v_page_no <= v_session.pages_served THEN
            -- a retried cursor: the page as it was served, in the same order,
            -- minus the posts that may no longer be shown (deleted, removed,
            -- blocked, muted, hidden, excluded by the request or, with
            -- in_network_only, out of the network now)
            v_viewer := feed._viewer_context(p_user_id, v_now);
            v_next_cursor := feed._cursor_encode(v_session.session_id, v_page_no + 1);
            RETURN QUERY
            SELECT (row_number() OVER (ORDER BY i.rank))::integer, i.post_id, i.author_id, i.score, i.source,
                   i.is_repeat, i.reasons || feed._experiment_reasons(v_session.experiments), v_next_cursor
            FROM feed.feed_session_items i
            JOIN feed.posts p ON p.post_id = i.post_id
            WHERE i.viewer_key = v_session.viewer_key AND i.session_id = v_session.session_id AND i.page_no = v_page_no
              AND feed._post_visible_to(p.visibility, p.is_deleted, p.media_ready, p.duration_ms, p.author_id,
                                        p_user_id, v_max_duration)
              AND (p_user_id IS NULL OR coalesce((v_context ->> 'include_own_posts')::boolean, false)
                   OR p.author_id <> p_user_id)
              AND p.author_id <> ALL (feed._bigints(v_viewer -> 'blocked'))
              AND p.author_id <> ALL (feed._bigints(v_viewer -> 'muted_authors'))
              AND (p.collective_id IS NULL OR p.collective_id <> ALL (feed._bigints(v_viewer -> 'muted_collectives')))
              AND p.category <> ALL (feed._texts(v_viewer -> 'muted_categories'))
              -- the per-viewer reads by the session's key (as in _feed_candidates)
              AND NOT EXISTS (SELECT 1 FROM feed.hidden_posts h
                              WHERE h.user_id = v_session.viewer_key AND h.user_id IS NOT DISTINCT FROM p_user_id
                                AND h.post_id = p.post_id)
              AND p.post_id <> ALL (feed._bigints(CASE WHEN jsonb_typeof(v_context -> 'exclude_post_ids') = 'array'
                                                       THEN v_context -> 'exclude_post_ids' END))
              AND (NOT coalesce((v_context ->> 'in_network_only')::boolean, false) OR p_user_id IS NULL
                   OR p.collective_id = ANY (feed._bigints(v_viewer -> 'collectives'))
                   OR EXISTS (SELECT 1 FROM feed.follows f WHERE f.follower_id = v_session.viewer_key
                                                           AND f.followee_id = p.author_id))
            ORDER BY i.rank;
            RETURN;
        END IF;
    END IF;

    -- settings read after the session's experiment overrides are in place
    v_cap := greatest(feed._setting_integer('max_posts_per_author'), 1);
    v_category_cap := greatest(floor(feed._setting_number('max_category_share') * p_page_size)::integer, 1);
    v_max_repeats := feed._setting_integer('max_repeats_per_page');
    v_protected := feed._setting_integer('protected_top_ranks');
    v_experiment_reasons := feed._experiment_reasons(v_session.experiments);
    SELECT * INTO v_profile FROM feed.ranking_profiles r WHERE r.name = v_session.profile;
    v_viewer := feed._viewer_context(p_user_id, v_now);
    v_want := greatest(feed._setting_integer('inventory_waterline'), p_page_size);

    -- the ladder: bounded sources, then wider, then every eligible post
    v_limit := greatest(2 * p_page_size, 24);
    LOOP
        SELECT array_agg(c.post_id ORDER BY c.sort_key, c.post_id), array_agg(c.author_id ORDER BY c.sort_key, c.post_id),
               array_agg(c.category ORDER BY c.sort_key, c.post_id), array_agg(c.created_at ORDER BY c.sort_key, c.post_id),
               array_agg(c.source ORDER BY c.sort_key, c.post_id), array_agg(c.collab ORDER BY c.sort_key, c.post_id)
        INTO v_ids, v_authors, v_categories, v_created, v_sources, v_collab
        FROM feed._feed_candidates(p_user_id, v_session.session_id, v_session.seed, v_page_no, v_session.mode,
                                   v_viewer, v_context, v_limit, v_level = 2, false, v_now) c;
        v_unseen := coalesce(cardinality(v_ids), 0);
        -- enough, and (from the first step, while one more step may find
        -- them) enough categories for the page to keep max_category_share
        EXIT WHEN v_level = 2
               OR (v_unseen >= v_want
                   AND (v_level >= 1 OR jsonb_array_length(coalesce(v_context -> 'categories', '[]')) = 1
                        OR (SELECT sum(least(n.c, v_category_cap)) FROM (
                                SELECT count(*) AS c FROM unnest(v_categories) AS u(category) GROUP BY u.category) n)
                           >= p_page_size));
        v_level := v_level + 1;
        v_limit := CASE WHEN v_level = 1 THEN v_limit * 8 ELSE v_want + p_page_size END;
    END LOOP;

    -- controlled repeats (posts seen within the cooldown), only while unseen
    -- inventory is under the waterline and max_repeats_per_page > 0: up to
    -- max_repeats_per_page of them below the protected top ranks, and as many
    -- as it takes to fill the page when unseen posts run out
    IF p_user_id IS NOT NULL AND v_max_repeats > 0 AND v_unseen < v_want THEN
        SELECT array_agg(c.post_id ORDER BY c.sort_key, c.post_id), array_agg(c.author_id ORDER BY c.sort_key, c.post_id),
               array_agg(c.category ORDER BY c.sort_key, c.post_id),
               array_agg(c.last_seen_at ORDER BY c.sort_key, c.post_id)
        INTO v_rep_ids, v_rep_authors, v_rep_categories, v_rep_seen
        FROM feed._feed_candidates(p_user_id, v_session.session_id, v_session.seed, v_page_no, v_session.mode,
                                   v_viewer, v_context, p_page_size + 100, true, true, v_now) c;
        v_repeats := least(coalesce(cardinality(v_rep_ids), 0),
                           greatest(p_page_size - v_unseen,
                                    least(v_max_repeats, greatest(p_page_size - v_protected, 0))),
                           p_page_size);
    END IF;
    v_fresh := least(v_unseen, p_page_size - v_repeats);
    -- repeats take the ranks right after the protected top (or after every
    -- unseen row when fewer unseen rows than protected ranks are left)
    v_top := least(v_protected, v_fresh);

    -- the page's candidates in preference order (v_ids and the arrays beside
    -- it): in the personalized mode scored, discounted and prioritized by
    -- quota; in every other mode the mode's order, as the ladder found them
    IF v_session.mode = 'personalized' THEN
        v_epsilon := coalesce((v_profile.params ->> 'epsilon')::double precision, feed._setting_number('epsilon'));
        v_quotas := feed._quota_counts(v_profile.source_quotas, p_page_size, v_epsilon, v_session.seed, v_page_no);
        v_tag_affinities := '{}';
        IF p_user_id IS NOT NULL AND coalesce((v_profile.weights ->> 'tag_affinity')::double precision, 0) <> 0 THEN
            -- the viewer's tag affinities, read once for scoring and for the
            -- tags behind each candidate's tag_affinity; the reasons are built
            -- before the page is written, since on a Citus cluster no query may
            -- run inside the statement writing it
            v_tag_affinities := feed._tag_affinities(p_user_id, v_ids, v_now);
            SELECT jsonb_object_agg(p.post_id, feed._tag_reasons(p.tags, v_tag_affinities,
                                                                 feed._tag_top_k(v_profile.params)))
            INTO v_tag_reasons
            FROM feed.posts p WHERE p.post_id = ANY (v_ids) AND cardinality(p.tags) > 0;
        END IF;
        WITH scored AS (
            SELECT s.*, cat.category, cat.created_at,
                   row_number() OVER (PARTITION BY s.author_id ORDER BY s.score DESC, s.post_id) - 1 AS k
            FROM feed._score_posts(p_user_id, v_viewer, v_profile.name, v_context, v_ids, v_sources, v_collab,
                                   v_now, v_tag_affinities) s
            JOIN unnest(v_ids, v_categories, v_created) AS cat(post_id, category, created_at) ON cat.post_id = s.post_id
        ), discounted AS (
            -- the k-th post of an author on a page is worth 0.75 * 0.5^k + 0.25 of its score
            SELECT d.*, 0.75 * power(0.5::double precision, d.k) + 0.25 AS diversity,
                   -- quota slots: following takes the newest, rising a seeded
                   -- random pick, every other source its best scores
                   row_number() OVER (PARTITION BY d.source ORDER BY d.k >= v_cap,
                                      CASE d.source WHEN 'following' THEN -extract(epoch FROM d.created_at)
                                                    WHEN 'rising' THEN feed._uniform(v_session.seed + v_page_no, d.post_id)
                                                    ELSE -d.score END,
                                      d.post_id) AS source_rank,
                   -- exploration: a seeded draw, candidates of the explore source first
                   row_number() OVER (ORDER BY d.k >= v_cap, d.source <> 'explore',
                                      feed._uniform(v_session.seed, d.post_id), d.post_id) AS explore_rank
            FROM scored d
        ), prioritized AS (
            SELECT d.*,
                   CASE WHEN d.explore_rank <= coalesce((v_quotas ->> 'explore')::int, 0) THEN 0
                        WHEN d.k < v_cap AND d.source <> 'explore'
                             AND d.source_rank <= coalesce((v_quotas ->> d.source)::int, 0) THEN 1
                        WHEN d.k < v_cap AND d.source <> 'explore' THEN 2
                        WHEN d.k < v_cap THEN 3
                        ELSE 4 END AS priority
            FROM discounted d
        ), ordered AS (
            SELECT d.*, CASE WHEN d.priority = 0 THEN 'explore' ELSE d.source END AS shown_source,
                   row_number() OVER (ORDER BY d.priority, d.score * d.diversity DESC, d.post_id) AS ord
            FROM prioritized d
        )
        SELECT array_agg(o.post_id ORDER BY o.ord), array_agg(o.author_id ORDER BY o.ord),
               array_agg(o.category ORDER BY o.ord), array_agg(o.shown_source ORDER BY o.ord),
               array_agg(o.score ORDER BY o.ord), array_agg(o.diversity ORDER BY o.ord),
               array_agg(o.components ORDER BY o.ord),
               array_agg(jsonb_build_object('author_diversity', o.diversity) ORDER BY o.ord)
        INTO v_ids, v_authors, v_categories, v_sources, v_scores, v_diversity, v_components, v_multipliers
        FROM ordered o;
    END IF;

    -- which candidates make the page. The number of unseen rows and of
    -- repeats is fixed; the caps count both: the unseen rows are picked, the
    -- repeats picked beside them, and the unseen rows picked again beside the
    -- repeats, so that neither pool fills a category or an author's share
    -- that the other could have left room in
    v_pick := feed._pick(v_authors, v_categories, NULL, NULL, v_fresh, v_cap, v_category_cap);
    IF v_repeats > 0 THEN
        v_rep_pick := feed._pick(v_rep_authors, v_rep_categories,
                                 ARRAY(SELECT v_authors[x.i] FROM unnest(v_pick) AS x(i)),
                                 ARRAY(SELECT v_categories[x.i] FROM unnest(v_pick) AS x(i)),
                                 v_repeats, v_cap, v_category_cap);
        v_pick := feed._pick(v_authors, v_categories,
                             ARRAY(SELECT v_rep_authors[x.i] FROM unnest(v_rep_pick) AS x(i)),
                             ARRAY(SELECT v_rep_categories[x.i] FROM unnest(v_rep_pick) AS x(i)),
                             v_fresh, v_cap, v_category_cap);
    END IF;

    IF v_session.mode = 'personalized' THEN
        -- picked rows ranked by their discounted score
        INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id, author_id, score, source,
                                             is_repeat, reasons)
        SELECT v_session.viewer_key, v_session.session_id, v_page_no, CASE WHEN r.q <= v_top THEN r.q ELSE r.q + v_repeats END,
               v_ids[r.i], v_authors[r.i], v_scores[r.i] * v_diversity[r.i], v_sources[r.i], false,
               e.reasons || CASE WHEN v_components[r.i][v_tag_component] <> 0
                                 THEN coalesce(v_tag_reasons -> v_ids[r.i]::text, '{}') ELSE '{}' END
        FROM (SELECT x.i, row_number() OVER (ORDER BY v_scores[x.i] * v_diversity[x.i] DESC, v_ids[x.i]) AS q
              FROM unnest(v_pick) AS x(i)) r
        JOIN feed._reasons(v_profile.name, v_profile.weights, v_session.mode, feed._components(), v_pick, v_sources,
                           v_components, v_scores, v_multipliers) e ON e.row_no = r.i;
    ELSE
        INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id, author_id, score, source,
                                             is_repeat, reasons)
        SELECT v_session.viewer_key, v_session.session_id, v_page_no, CASE WHEN u.q <= v_top THEN u.q ELSE u.q + v_repeats END,
               u.post_id, p.author_id,
               -- a searched CASE: Citus deparses "CASE <parameter> WHEN ..." wrongly for a shard
               CASE WHEN v_session.mode = 'trending' THEN p.trending_score
                    WHEN v_session.mode = 'random' THEN feed._uniform(v_session.seed, u.post_id)
                    ELSE extract(epoch FROM p.created_at) END,
               u.source, false,
               jsonb_build_object('mode', v_session.mode, 'source', u.source,
                                  'trending_score', p.trending_score, 'created_at', p.created_at)
        FROM (SELECT v_ids[x.i] AS post_id, v_sources[x.i] AS source, row_number() OVER (ORDER BY x.i) AS q
              FROM unnest(v_pick) AS x(i)) u
        JOIN feed.posts p ON p.post_id = u.post_id;
    END IF;

    -- the repeats: least recently seen first, right after the protected top
    IF v_repeats > 0 THEN
        INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id, author_id, score, source,
                                             is_repeat, reasons)
        SELECT v_session.viewer_key, v_session.session_id, v_page_no, v_top + row_number() OVER (ORDER BY x.i),
               v_rep_ids[x.i], v_rep_authors[x.i], 0, 'repeat', true,
               jsonb_build_object('mode', v_session.mode, 'profile', v_session.profile, 'source', 'repeat',
                                  'last_seen_at', v_rep_seen[x.i])
        FROM unnest(v_rep_pick) AS x(i);
    END IF;

    UPDATE feed.feed_sessions s SET pages_served = v_page_no WHERE s.viewer_key = v_session.viewer_key AND s.session_id = v_session.session_id;

    v_next_cursor := feed._cursor_encode(v_session.session_id, v_page_no + 1);
    RETURN QUERY
    SELECT i.rank, i.post_id, i.author_id, i.score, i.source, i.is_repeat,
           i.reasons || v_experiment_reasons, v_next_cursor
    FROM feed.feed_session_items i
    WHERE i.viewer_key = v_session.viewer_key AND i.session_id = v_session.session_id AND i.page_no = v_page_no
    ORDER BY i.rank;
END
$func$;

-------------------------------------------------------------------------------
-- explain_score: why a post would (or would not) be in a viewer's feed:
-- every exclusion rule that applies, and the profile's score with each
-- component's value and contribution (contract §3.1)
CREATE OR REPLACE FUNCTION feed.explain_score(p_user_id bigint, p_post_id bigint, p_context jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_now timestamptz := now();
    v_context jsonb;
    v_viewer jsonb;
    v_post feed.posts;
    v_seen feed.seen_posts;
    v_hidden text;
    v_excluded text[] := '{}';
    v_scored record;
    v_profile feed.ranking_profiles;
    v_weights_tags boolean;
    v_tag_affinities jsonb;
BEGIN
    -- another viewer's hidden, reported and seen posts are theirs alone
    PERFORM feed._authorize_viewer(p_user_id);
    v_context := feed._check_context(p_user_id, p_context);
    IF p_post_id IS NULL THEN
        PERFORM feed._bad_argument('p_post_id', 'must not be null');
    END IF;
    SELECT * INTO v_post FROM feed.posts p WHERE p.post_id = p_post_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'p_post_id: post % does not exist', p_post_id USING ERRCODE = '23503';
    END IF;
    v_viewer := feed._viewer_context(p_user_id, v_now);
    SELECT * INTO v_seen FROM feed.seen_posts s WHERE s.user_id = p_user_id AND s.post_id = p_post_id;
    SELECT h.reason INTO v_hidden FROM feed.hidden_posts h WHERE h.user_id = p_user_id AND h.post_id = p_post_id;

    v_excluded := array_remove(ARRAY[
        CASE WHEN v_post.is_deleted THEN 'deleted' END,
        CASE WHEN v_post.visibility = 'removed' THEN 'removed' END,
        CASE WHEN v_post.visibility = 'shadow_ban' AND v_post.author_id IS DISTINCT FROM p_user_id THEN 'shadow_banned' END,
        CASE WHEN NOT v_post.media_ready THEN 'media_not_ready' END,
        CASE WHEN v_post.duration_ms > feed._setting_integer('max_duration_ms') THEN 'longer_than_max_duration' END,
        CASE WHEN v_post.author_id = p_user_id AND NOT coalesce((v_context ->> 'include_own_posts')::boolean, false)
             THEN 'own_post' END,
        CASE WHEN v_post.author_id = ANY (feed._bigints(v_viewer -> 'blocked')) THEN 'blocked' END,
        CASE WHEN v_post.author_id = ANY (feed._bigints(v_viewer -> 'muted_authors')) THEN 'muted_author' END,
        CASE WHEN v_post.collective_id = ANY (feed._bigints(v_viewer -> 'muted_collectives')) THEN 'muted_collective' END,
        CASE WHEN v_post.category = ANY (feed._texts(v_viewer -> 'muted_categories')) THEN 'muted_category' END,
        CASE WHEN v_hidden IS NOT NULL THEN 'hidden_by_' || v_hidden END,
        CASE WHEN jsonb_typeof(v_context -> 'categories') = 'array'
                  AND NOT v_post.category = ANY (feed._texts(v_context -> 'categories')) THEN 'category_not_requested' END,
        CASE WHEN jsonb_typeof(v_context -> 'post_types') = 'array'
                  AND NOT v_post.post_type = ANY (feed._texts(v_context -> 'post_types')) THEN 'post_type_not_requested' END,
        CASE WHEN jsonb_typeof(v_context -> 'exclude_post_ids') = 'array'
                  AND v_post.post_id = ANY (feed._bigints(v_context -> 'exclude_post_ids')) THEN 'excluded_by_request' END,
        CASE WHEN coalesce((v_context ->> 'in_network_only')::boolean, false)
                  AND NOT coalesce(v_post.collective_id = ANY (feed._bigints(v_viewer -> 'collectives')), false)
                  AND NOT EXISTS (SELECT 1 FROM feed.follows f WHERE f.follower_id = p_user_id
                                                                AND f.followee_id = v_post.author_id)
             THEN 'out_of_network' END
    ], NULL);

    SELECT * INTO v_profile FROM feed.ranking_profiles r WHERE r.name = v_context ->> 'profile';
    v_weights_tags := p_user_id IS NOT NULL
                      AND coalesce((v_profile.weights ->> 'tag_affinity')::double precision, 0) <> 0;
    v_tag_affinities := CASE WHEN v_weights_tags THEN feed._tag_affinities(p_user_id, ARRAY[p_post_id], v_now)
                             ELSE '{}' END;
    SELECT * INTO v_scored
    FROM feed._score_posts(p_user_id, v_viewer, v_context ->> 'profile', v_context, ARRAY[p_post_id],
                           ARRAY['explain'], ARRAY[NULL::double precision], v_now, v_tag_affinities);

    RETURN jsonb_build_object(
        'user_id', p_user_id,
        'post_id', p_post_id,
        'eligible', cardinality(v_excluded) = 0,
        'excluded_because', to_jsonb(v_excluded),
        'in_cooldown', v_seen.last_seen_at > v_now - feed._setting_interval('cooldown'),
        'last_seen_at', v_seen.last_seen_at,
        'score', v_scored.score,
        'weights', v_profile.weights)
        || (SELECT r.reasons FROM feed._reasons(v_context ->> 'profile', v_profile.weights, v_context ->> 'mode',
                                                feed._components(), ARRAY[1], ARRAY['explain'],
                                                ARRAY[v_scored.components],
                                                ARRAY[v_scored.score], ARRAY['{}'::jsonb]) r)
        || CASE WHEN v_weights_tags
                THEN feed._tag_reasons(v_post.tags, v_tag_affinities, feed._tag_top_k(v_profile.params))
                ELSE '{}' END;
END
$func$;
