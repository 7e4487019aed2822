-- The engagement write path (contract §3.2): record_interaction,
-- record_impression(s), record_watch_progress. Each call validates every
-- argument before it writes anything, then in one transaction appends to the
-- log, updates the viewer's signals and, last, the post's counters (so the
-- hot post row is locked for the shortest possible time).

-------------------------------------------------------------------------------
-- _bad_argument: raise 22023 naming the argument
CREATE OR REPLACE FUNCTION feed._bad_argument(p_argument text, p_problem text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    RAISE EXCEPTION '%: %', p_argument, p_problem USING ERRCODE = '22023';
END
$func$;

-------------------------------------------------------------------------------
-- _actions: every action record_interaction accepts (contract §3.2)
CREATE OR REPLACE FUNCTION feed._actions()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT ARRAY['view', 'like', 'unlike', 'comment', 'share', 'gift', 'tip', 'praise', 'trophy',
                 'save', 'not_interested', 'report', 'dislike']
$func$;

-------------------------------------------------------------------------------
-- _category_signal: how much one action moves a viewer's category affinity
-- (in [-1, 1]); strong, costly acts move it more, negative acts push it down
CREATE OR REPLACE FUNCTION feed._category_signal(p_action text)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE p_action
        WHEN 'view' THEN 0.02  WHEN 'like' THEN 0.10  WHEN 'unlike' THEN -0.10
        WHEN 'comment' THEN 0.15  WHEN 'share' THEN 0.20  WHEN 'save' THEN 0.15
        WHEN 'praise' THEN 0.15  WHEN 'trophy' THEN 0.25  WHEN 'gift' THEN 0.25  WHEN 'tip' THEN 0.25
        WHEN 'not_interested' THEN -0.30  WHEN 'dislike' THEN -0.40  WHEN 'report' THEN -0.50
        ELSE 0 END::double precision
$func$;

-------------------------------------------------------------------------------
-- _decayed_affinity: a category or tag affinity stored as p_affinity at
-- p_since, as of p_at: it halves every p_half_life seconds (none: no decay).
-- The one decay of the write path, the feed and explain_score; the rebuild's
-- _category_affinity_step (60_bulk.sql) repeats its arithmetic operation for
-- operation. No SET search_path, so that it inlines into the queries that
-- read affinities (a SET clause makes it a call per row); every operator and
-- function is schema-qualified instead.
CREATE OR REPLACE FUNCTION feed._decayed_affinity(
    p_affinity double precision, p_since timestamptz, p_at timestamptz, p_half_life double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $func$
    SELECT p_affinity OPERATOR(pg_catalog.*)
           CASE WHEN p_half_life OPERATOR(pg_catalog.>) 0
                THEN pg_catalog.power(0.5, least(greatest(extract(epoch FROM p_at OPERATOR(pg_catalog.-) p_since), 0)
                                                 OPERATOR(pg_catalog./) p_half_life, 1000))
                ELSE 1 END
$func$;

-------------------------------------------------------------------------------
-- _state_actions: the actions that set a per-user state of a post (contract
-- §3.2 v2) and the value each sets. The one definition of the state
-- semantics: the write path (_note_state) and the rebuild (_latest_states,
-- 60_bulk.sql) both read it. Repeating one counts once; unlike clears only
-- the caller's own like.
CREATE OR REPLACE FUNCTION feed._state_actions()
RETURNS TABLE (action text, state text, active boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    VALUES ('like', 'liked', true), ('unlike', 'liked', false), ('praise', 'praised', true),
           ('trophy', 'trophied', true), ('save', 'saved', true)
$func$;

-------------------------------------------------------------------------------
-- _note_state: the viewer's latest call on a post sets its state; returns how
-- the state's count moved (+1, -1 or 0). "Latest" is the order of the calls,
-- (called_at, interaction_id), not of their transactions: a call older than
-- the stored one changes nothing. The row lock serialises one viewer's calls
-- on one post, so the result depends neither on retries nor on commit order.
CREATE OR REPLACE FUNCTION feed._note_state(
    p_user_id bigint, p_post_id bigint, p_state text, p_active boolean, p_called_at timestamptz,
    p_interaction_id bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_old record;
BEGIN
    LOOP
        SELECT s.active, s.called_at, s.interaction_id INTO v_old
        FROM feed.user_post_state s
        WHERE s.user_id = p_user_id AND s.post_id = p_post_id AND s.state = p_state
        FOR UPDATE;
        IF FOUND THEN
            IF (v_old.called_at, v_old.interaction_id) >= (p_called_at, p_interaction_id) THEN
                RETURN 0;
            END IF;
            UPDATE feed.user_post_state s
            SET active = p_active, called_at = p_called_at, interaction_id = p_interaction_id
            WHERE s.user_id = p_user_id AND s.post_id = p_post_id AND s.state = p_state;
            RETURN p_active::integer - v_old.active::integer;
        END IF;
        INSERT INTO feed.user_post_state (user_id, post_id, state, active, called_at, interaction_id)
        VALUES (p_user_id, p_post_id, p_state, p_active, p_called_at, p_interaction_id)
        ON CONFLICT (user_id, post_id, state) DO NOTHING;
        IF FOUND THEN
            RETURN p_active::integer;
        END IF;
        -- a concurrent first call on this state committed meanwhile: compare with it
    END LOOP;
END
$func$;

-------------------------------------------------------------------------------
-- _lock_viewer: serialise one viewer's engagement writes until commit. A
-- viewer's path-dependent state (decayed category affinity, moving averages,
-- taste, states) is then updated in exactly the order of the calls'
-- clock_timestamp() (interactions.called_at), which is the order the rebuild
-- replays. Two-key advisory lock: its key space is apart from the one-key
-- locks of build_recommendations; a hash collision only serialises two viewers.
CREATE OR REPLACE FUNCTION feed._lock_viewer(p_user_id bigint)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT pg_advisory_xact_lock(hashtext('pgfeed.viewer'), hashtext(p_user_id::text))
$func$;

-------------------------------------------------------------------------------
-- _require_viewer / _require_post: argument checks shared by the writes
CREATE OR REPLACE FUNCTION feed._require_viewer(p_user_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_user_id IS NULL THEN
        PERFORM feed._bad_argument('p_user_id', 'must not be null (anonymous viewers cannot write)');
    END IF;
END
$func$;

-- its result gained tags, a new row type that CREATE OR REPLACE cannot give
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
               WHERE p.oid = pg_catalog.to_regprocedure('feed._require_post(bigint)')
                 AND NOT 'tags' OPERATOR(pg_catalog.=) ANY (p.proargnames)) THEN
        DROP FUNCTION feed._require_post(bigint);
    END IF;
END
$do$;
CREATE OR REPLACE FUNCTION feed._require_post(
    p_post_id bigint, OUT author_id bigint, OUT category text, OUT post_type text, OUT tags text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_post_id IS NULL THEN
        PERFORM feed._bad_argument('p_post_id', 'must not be null');
    END IF;
    SELECT p.author_id, p.category, p.post_type, p.tags INTO author_id, category, post_type, tags
    FROM feed.posts p WHERE p.post_id = p_post_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'p_post_id: post % does not exist', p_post_id
            USING ERRCODE = '23503', HINT = 'insert it into feed.posts first';
    END IF;
END
$func$;

-------------------------------------------------------------------------------
-- _note_seen: the viewer saw the post at p_at (drives cooldown and repeats)
CREATE OR REPLACE FUNCTION feed._note_seen(p_user_id bigint, p_post_id bigint, p_at timestamptz)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
    INSERT INTO feed.seen_posts AS s (user_id, post_id, first_seen_at, last_seen_at, times_seen)
    VALUES (p_user_id, p_post_id, p_at, p_at, 1)
    ON CONFLICT (user_id, post_id) DO UPDATE
    SET first_seen_at = least(s.first_seen_at, excluded.first_seen_at),
        last_seen_at = greatest(s.last_seen_at, excluded.last_seen_at),
        times_seen = s.times_seen + 1
$func$;

-- the write path before one statement per call: _observe_engagement is now
-- part of _apply_interaction, which takes the post's tags and what to observe
DROP FUNCTION IF EXISTS feed._observe_engagement(bigint, boolean, boolean, boolean, double precision, timestamptz);
DROP FUNCTION IF EXISTS feed._apply_interaction(bigint, bigint, bigint, text, text, text, numeric, integer,
                                                double precision, timestamptz);

-------------------------------------------------------------------------------
-- _write_settings: the settings the write path reads, in one query. Writes
-- are SECURITY DEFINER functions with pgfeed.setting_overrides reset
-- (90_security.sql), so no experiment override applies and the stored value
-- is the value; the casts are the kinds the settings table guarantees.
CREATE OR REPLACE FUNCTION feed._write_settings(
    OUT category_half_life_seconds double precision, OUT ema_alpha double precision,
    OUT taste_alpha double precision)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT extract(epoch FROM max(s.value) FILTER (WHERE s.name = 'category_affinity_half_life')::interval)::double precision,
           least(max(s.value) FILTER (WHERE s.name = 'ema_alpha')::double precision, 1),
           max(s.value) FILTER (WHERE s.name = 'taste_alpha')::double precision
    FROM feed.settings s
    WHERE s.name IN ('category_affinity_half_life', 'ema_alpha', 'taste_alpha')
$func$;

-------------------------------------------------------------------------------
-- _apply_interaction: log one action and update the viewer's state of the
-- post and every per-viewer signal: seen, hidden, per author, per post type,
-- per category, per tag, the moving averages (when p_observe: the caller
-- folds one exposure into them, with the liked / commented / shared flags and
-- p_watch_ratio) and the taste vector. Returns the interaction's id and, for a
-- state action (_state_actions), the state and how its count moved. Post
-- counters are the caller's, so that one call touches each row once. The
-- per-viewer rows are written by one statement: one plan, one snapshot, one
-- trip through the executor per call instead of one per table.
CREATE OR REPLACE FUNCTION feed._apply_interaction(
    p_user_id bigint, p_post_id bigint, p_author_id bigint, p_category text, p_post_type text, p_tags text[],
    p_action text, p_value_amount numeric, p_time_spent_seconds integer, p_watch_ratio double precision,
    p_now timestamptz, p_observe boolean, p_liked boolean, p_commented boolean, p_shared boolean,
    OUT interaction_id bigint, OUT state text, OUT state_delta integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_called_at timestamptz;
    v_positive boolean := p_action IN ('like', 'comment', 'share', 'gift', 'tip', 'praise', 'trophy', 'save');
    v_negative boolean := p_action IN ('not_interested', 'dislike', 'report');
    v_active boolean;
    v_liked integer;
    v_praised integer;
    v_trophied integer;
    v_saved integer;
    v_settings record;
    v_signal double precision := greatest(-1, least(1, feed._category_signal(p_action)));
BEGIN
    PERFORM feed._lock_viewer(p_user_id);
    v_called_at := clock_timestamp();  -- after the lock: call order is lock order
    INSERT INTO feed.interactions (user_id, post_id, action, value_amount, time_spent_seconds, watch_ratio,
                                   created_at, called_at)
    VALUES (p_user_id, p_post_id, p_action, p_value_amount, p_time_spent_seconds, p_watch_ratio, p_now, v_called_at)
    RETURNING interactions.interaction_id INTO interaction_id;

    state_delta := 0;
    SELECT a.state, a.active INTO state, v_active FROM feed._state_actions() a WHERE a.action = p_action;
    IF state IS NOT NULL THEN
        state_delta := feed._note_state(p_user_id, p_post_id, state, v_active, v_called_at, interaction_id);
    END IF;
    v_settings := feed._write_settings();

    -- per author: states count the author's posts in that state; the rest accumulate
    -- (a new row starts at zero: a CHECK sees the proposed row before ON CONFLICT)
    v_liked := CASE WHEN state = 'liked' THEN state_delta ELSE 0 END;
    v_praised := CASE WHEN state = 'praised' THEN state_delta ELSE 0 END;
    v_trophied := CASE WHEN state = 'trophied' THEN state_delta ELSE 0 END;
    v_saved := CASE WHEN state = 'saved' THEN state_delta ELSE 0 END;

    WITH seen AS (
        -- an interaction implies the viewer saw the post (contract §4.3); the
        -- same upsert as _note_seen
        INSERT INTO feed.seen_posts AS s (user_id, post_id, first_seen_at, last_seen_at, times_seen)
        VALUES (p_user_id, p_post_id, p_now, p_now, 1)
        ON CONFLICT (user_id, post_id) DO UPDATE
        SET first_seen_at = least(s.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(s.last_seen_at, excluded.last_seen_at),
            times_seen = s.times_seen + 1
    ), hidden AS (
        INSERT INTO feed.hidden_posts (user_id, post_id, reason, created_at)
        SELECT p_user_id, p_post_id, p_action, p_now WHERE v_negative
        ON CONFLICT (user_id, post_id) DO NOTHING
    ), by_author AS (
        INSERT INTO feed.user_author_affinity AS a (
            user_id, author_id, like_count, praise_count, trophy_count, comment_count, share_count,
            save_count, gift_count, tip_count, view_count, negative_count, last_positive_at)
        SELECT p_user_id, p_author_id, greatest(v_liked, 0), greatest(v_praised, 0),
               greatest(v_trophied, 0), (p_action = 'comment')::int, (p_action = 'share')::int,
               greatest(v_saved, 0), (p_action = 'gift')::int, (p_action = 'tip')::int,
               (p_action = 'view')::int, v_negative::int, CASE WHEN v_positive THEN p_now END
        WHERE p_author_id <> p_user_id
        ON CONFLICT (user_id, author_id) DO UPDATE
        SET like_count = a.like_count + v_liked,
            praise_count = a.praise_count + v_praised,
            trophy_count = a.trophy_count + v_trophied,
            comment_count = a.comment_count + excluded.comment_count,
            share_count = a.share_count + excluded.share_count,
            save_count = a.save_count + v_saved,
            gift_count = a.gift_count + excluded.gift_count,
            tip_count = a.tip_count + excluded.tip_count,
            view_count = a.view_count + excluded.view_count,
            negative_count = a.negative_count + excluded.negative_count,
            last_positive_at = greatest(a.last_positive_at, excluded.last_positive_at)
    ), by_post_type AS (
        -- hearts, praise and trophies per post type (posts in those states)
        INSERT INTO feed.user_post_type_affinity AS t (user_id, post_type, interaction_count, last_interaction_at)
        SELECT p_user_id, p_post_type, state_delta, p_now WHERE p_action IN ('like', 'praise', 'trophy')
        ON CONFLICT (user_id, post_type) DO UPDATE
        SET interaction_count = t.interaction_count + excluded.interaction_count,
            last_interaction_at = greatest(t.last_interaction_at, p_now)
    ), unliked_post_type AS (
        -- exclusive with by_post_type (different actions): no row is touched twice
        UPDATE feed.user_post_type_affinity t
        SET interaction_count = t.interaction_count + state_delta
        WHERE t.user_id = p_user_id AND t.post_type = p_post_type AND p_action = 'unlike' AND state_delta <> 0
    ), by_category AS (
        -- affinity in [-1, 1] that halves every half-life without new signals:
        -- per category, and per tag of the post (the same signal and decay)
        INSERT INTO feed.user_category_affinity AS c (user_id, category, affinity, updated_at)
        VALUES (p_user_id, p_category, v_signal, p_now)
        ON CONFLICT (user_id, category) DO UPDATE
        SET affinity = greatest(-1, least(1,
                feed._decayed_affinity(c.affinity, c.updated_at, p_now, v_settings.category_half_life_seconds)
                + excluded.affinity)),
            updated_at = greatest(c.updated_at, p_now)
    ), by_tag AS (
        INSERT INTO feed.user_tag_affinity AS t (user_id, tag, affinity, updated_at)
        SELECT DISTINCT p_user_id, g.tag, v_signal, p_now FROM unnest(p_tags) AS g(tag)
        WHERE g.tag IS NOT NULL
        ORDER BY 2  -- one viewer's rows in one order (the viewer lock serialises them anyway)
        ON CONFLICT (user_id, tag) DO UPDATE
        SET affinity = greatest(-1, least(1,
                feed._decayed_affinity(t.affinity, t.updated_at, p_now, v_settings.category_half_life_seconds)
                + excluded.affinity)),
            updated_at = greatest(t.updated_at, p_now)
    ), observed AS (
        -- one exposure folded into the moving averages; the first observation
        -- sets a rate outright instead of averaging it with zero
        INSERT INTO feed.user_signals AS s (user_id, like_rate, comment_rate, share_rate, watch_ratio,
                                            observations, watches, updated_at)
        SELECT p_user_id, p_liked::int, p_commented::int, p_shared::int, p_watch_ratio,
               1, (p_watch_ratio IS NOT NULL)::int, p_now
        WHERE p_observe
        ON CONFLICT (user_id) DO UPDATE
        SET like_rate = (1 - v_settings.ema_alpha) * s.like_rate + v_settings.ema_alpha * excluded.like_rate,
            comment_rate = (1 - v_settings.ema_alpha) * s.comment_rate + v_settings.ema_alpha * excluded.comment_rate,
            share_rate = (1 - v_settings.ema_alpha) * s.share_rate + v_settings.ema_alpha * excluded.share_rate,
            watch_ratio = CASE WHEN excluded.watch_ratio IS NULL THEN s.watch_ratio
                               WHEN s.watch_ratio IS NULL THEN excluded.watch_ratio
                               ELSE (1 - v_settings.ema_alpha) * s.watch_ratio
                                    + v_settings.ema_alpha * excluded.watch_ratio END,
            observations = s.observations + 1,
            watches = s.watches + excluded.watches,
            updated_at = greatest(s.updated_at, p_now)
    )
    SELECT NULL INTO v_active;

    -- the viewer's taste vector follows the post's embedding (sql/functions/40_vectors.sql)
    PERFORM feed._update_taste(p_user_id, p_post_id, p_action, p_watch_ratio, p_now, v_settings.taste_alpha);
END
$func$;

-------------------------------------------------------------------------------
-- _bump_post: add deltas to a post's engine counters and, when an input of
-- the trending formula moved, set trending_score in the same row update (the
-- posts_rescore trigger, 10_trending.sql, then has nothing left to do: a row
-- trigger was a third of the update's time, spent under the post's row lock).
-- The operator's weights are read before the row is touched. A view alone
-- leaves trending_score as it was (and reads no weights), so its row version
-- can stay a HOT update.
CREATE OR REPLACE FUNCTION feed._bump_post(
    p_post_id bigint, p_likes integer DEFAULT 0, p_comments integer DEFAULT 0, p_shares integer DEFAULT 0,
    p_views integer DEFAULT 0, p_gift numeric DEFAULT 0, p_tip numeric DEFAULT 0,
    p_praises integer DEFAULT 0, p_trophies integer DEFAULT 0, p_saves integer DEFAULT 0,
    p_reports integer DEFAULT 0, p_watches integer DEFAULT 0, p_watch_ratio double precision DEFAULT 0)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    w record;
    -- a value, not now() in the statement: Citus refuses a non-immutable call inside CASE
    v_now timestamptz := now();
    v_rescore boolean := p_likes <> 0 OR p_comments <> 0 OR p_shares <> 0 OR p_gift <> 0 OR p_tip <> 0;
BEGIN
    -- a call that moves no counter (a repeated like, a dislike) leaves the hot row alone
    IF NOT (v_rescore OR p_views <> 0 OR p_praises <> 0 OR p_trophies <> 0 OR p_saves <> 0 OR p_reports <> 0
            OR p_watches <> 0 OR p_watch_ratio <> 0) THEN
        RETURN;
    END IF;
    -- the operator's weights only when the score moves (a view alone needs
    -- none; with no row, w holds nulls the update's CASE never reads)
    SELECT * INTO w FROM feed._trending_weights() WHERE v_rescore;
    UPDATE feed.posts p
    SET like_count = p.like_count + p_likes,
        comment_count = p.comment_count + p_comments,
        share_count = p.share_count + p_shares,
        view_count = p.view_count + p_views,
        gift_amount = p.gift_amount + p_gift,
        tip_amount = p.tip_amount + p_tip,
        praise_count = p.praise_count + p_praises,
        trophy_count = p.trophy_count + p_trophies,
        save_count = p.save_count + p_saves,
        report_count = p.report_count + p_reports,
        watch_count = p.watch_count + p_watches,
        watch_ratio_sum = p.watch_ratio_sum + p_watch_ratio,
        trending_score = CASE WHEN v_rescore
                              THEN feed._trending_formula(
                                       p.like_count + p_likes, p.comment_count + p_comments,
                                       p.share_count + p_shares, p.gift_amount + p_gift, p.tip_amount + p_tip,
                                       p.created_at, v_now, w.weight_likes, w.weight_comments, w.weight_shares,
                                       w.weight_gifts, w.weight_tips, w.gravity)
                              ELSE p.trending_score END
    WHERE p.post_id = p_post_id;
END
$func$;

-------------------------------------------------------------------------------
-- record_interaction: one engagement event (contract §3.2); returns its id.
-- Order: every argument is checked, then the post row is taken (and, for
-- money, its total checked), and only then is anything logged: a refused
-- call writes nothing and draws no id.
CREATE OR REPLACE FUNCTION feed.record_interaction(
    p_user_id bigint, p_post_id bigint, p_action text,
    p_value_amount numeric DEFAULT 0, p_time_spent_seconds integer DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_post record;
    v_total numeric;
    v_now timestamptz := now();
    v_applied record;
BEGIN
    PERFORM feed._authorize_viewer(p_user_id);
    PERFORM feed._require_viewer(p_user_id);
    IF p_action IS NULL OR NOT p_action = ANY (feed._actions()) THEN
        PERFORM feed._bad_argument('p_action', format('unknown action %L; expected one of %s',
                                   p_action, array_to_string(feed._actions(), ', ')));
    END IF;
    PERFORM feed._check_amount(p_action, p_value_amount);
    IF p_time_spent_seconds IS NULL OR p_time_spent_seconds < 0 THEN
        PERFORM feed._bad_argument('p_time_spent_seconds', format('must be zero or positive, got %s',
                                   coalesce(p_time_spent_seconds::text, 'null')));
    END IF;
    v_post := feed._require_post(p_post_id);
    IF p_action IN ('gift', 'tip') THEN
        PERFORM feed._lock_viewer(p_user_id);  -- before the post row, in _apply_interaction's order
        -- locked, so that no concurrent gift can take the total past numeric(12,2) after this check
        SELECT CASE p_action WHEN 'gift' THEN p.gift_amount ELSE p.tip_amount END INTO v_total
        FROM feed.posts p WHERE p.post_id = p_post_id FOR NO KEY UPDATE;
        IF v_total + p_value_amount >= 1e10 THEN
            PERFORM feed._bad_argument('p_value_amount', format(
                'post %s''s %s total %s plus %s would not fit numeric(12,2)', p_post_id, p_action, v_total, p_value_amount));
        END IF;
    END IF;

    -- view, like, comment and share are exposures the moving averages observe
    v_applied := feed._apply_interaction(p_user_id, p_post_id, v_post.author_id, v_post.category, v_post.post_type,
                                         v_post.tags, p_action, p_value_amount, p_time_spent_seconds, NULL, v_now,
                                         p_action IN ('view', 'like', 'comment', 'share'),
                                         p_action = 'like', p_action = 'comment', p_action = 'share');
    PERFORM feed._bump_post(p_post_id,
        p_likes => CASE WHEN v_applied.state = 'liked' THEN v_applied.state_delta ELSE 0 END,
        p_comments => (p_action = 'comment')::int, p_shares => (p_action = 'share')::int,
        p_views => (p_action = 'view')::int,
        p_gift => CASE WHEN p_action = 'gift' THEN p_value_amount ELSE 0 END,
        p_tip => CASE WHEN p_action = 'tip' THEN p_value_amount ELSE 0 END,
        p_praises => CASE WHEN v_applied.state = 'praised' THEN v_applied.state_delta ELSE 0 END,
        p_trophies => CASE WHEN v_applied.state = 'trophied' THEN v_applied.state_delta ELSE 0 END,
        p_saves => CASE WHEN v_applied.state = 'saved' THEN v_applied.state_delta ELSE 0 END,
        p_reports => (p_action = 'report')::int);
    RETURN v_applied.interaction_id;
END
$func$;

-------------------------------------------------------------------------------
-- record_impression: the viewer actually saw the post (contract §3.2).
-- A retry with the same (viewer, post, session) counts once.
CREATE OR REPLACE FUNCTION feed.record_impression(
    p_user_id bigint, p_post_id bigint, p_source text DEFAULT NULL,
    p_score double precision DEFAULT NULL, p_session_id text DEFAULT NULL,
    p_visible_at timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    PERFORM feed._authorize_viewer(p_user_id);
    PERFORM feed._require_viewer(p_user_id);
    IF p_source IS NOT NULL AND length(p_source) > 100 THEN
        PERFORM feed._bad_argument('p_source', format('at most 100 characters, got %s', length(p_source)));
    END IF;
    IF p_score = 'NaN'::double precision OR p_score IN ('Infinity', '-Infinity') THEN
        PERFORM feed._bad_argument('p_score', format('must be a finite number, got %s', p_score));
    END IF;
    PERFORM feed._check_session_id(p_session_id);
    IF p_visible_at IS NULL OR NOT isfinite(p_visible_at) THEN
        PERFORM feed._bad_argument('p_visible_at', 'must be a finite time');
    END IF;
    PERFORM feed._require_post(p_post_id);

    INSERT INTO feed.impressions (user_id, post_id, seen_at, source, score, session_id)
    VALUES (p_user_id, p_post_id, p_visible_at, p_source, p_score, p_session_id)
    ON CONFLICT (user_id, post_id, session_id) DO NOTHING;
    IF FOUND THEN
        PERFORM feed._note_seen(p_user_id, p_post_id, p_visible_at);
    END IF;
END
$func$;

-------------------------------------------------------------------------------
-- record_impressions: the batch form; returns how many were new
CREATE OR REPLACE FUNCTION feed.record_impressions(
    p_user_id bigint, p_post_ids bigint[], p_session_id text DEFAULT NULL,
    p_visible_at timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_missing bigint;
    v_recorded integer;
BEGIN
    PERFORM feed._authorize_viewer(p_user_id);
    PERFORM feed._require_viewer(p_user_id);
    IF p_post_ids IS NULL THEN
        PERFORM feed._bad_argument('p_post_ids', 'must not be null');
    ELSIF array_ndims(p_post_ids) > 1 THEN
        PERFORM feed._bad_argument('p_post_ids', format('must be a one-dimensional array, got %s dimensions',
                                                        array_ndims(p_post_ids)));
    ELSIF array_position(p_post_ids, NULL) IS NOT NULL THEN
        PERFORM feed._bad_argument('p_post_ids', 'must not contain nulls');
    ELSIF cardinality(p_post_ids) > 10000 THEN
        PERFORM feed._bad_argument('p_post_ids', 'at most 10000 posts per call');
    END IF;
    PERFORM feed._check_session_id(p_session_id);
    IF p_visible_at IS NULL OR NOT isfinite(p_visible_at) THEN
        PERFORM feed._bad_argument('p_visible_at', 'must be a finite time');
    END IF;
    SELECT min(ids.post_id) INTO v_missing
    FROM unnest(p_post_ids) AS ids(post_id)
    WHERE NOT EXISTS (SELECT 1 FROM feed.posts p WHERE p.post_id = ids.post_id);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'p_post_ids: post % does not exist', v_missing USING ERRCODE = '23503';
    END IF;

    -- sorted, so that two batches of one viewer lock rows in the same order
    WITH recorded AS (
        INSERT INTO feed.impressions (user_id, post_id, seen_at, session_id)
        SELECT DISTINCT p_user_id, ids.post_id, p_visible_at, p_session_id
        FROM unnest(p_post_ids) AS ids(post_id)
        ORDER BY 2
        ON CONFLICT (user_id, post_id, session_id) DO NOTHING
        RETURNING post_id
    ), noted AS (
        INSERT INTO feed.seen_posts AS s (user_id, post_id, first_seen_at, last_seen_at, times_seen)
        SELECT p_user_id, r.post_id, p_visible_at, p_visible_at, 1 FROM recorded r ORDER BY r.post_id
        ON CONFLICT (user_id, post_id) DO UPDATE
        SET first_seen_at = least(s.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(s.last_seen_at, excluded.last_seen_at),
            times_seen = s.times_seen + 1
    )
    SELECT count(*) INTO v_recorded FROM recorded;
    RETURN v_recorded;
END
$func$;

-------------------------------------------------------------------------------
-- record_watch_progress: one viewing of a video (contract §3.2). Logged as a
-- view with its time and watch ratio = min(play / duration, 1); the liked,
-- commented and shared flags count exactly as those interactions would.
-- Call it once per viewing, when the viewer moves on.
CREATE OR REPLACE FUNCTION feed.record_watch_progress(
    p_user_id bigint, p_post_id bigint, p_play_ms integer, p_duration_ms integer,
    p_liked boolean DEFAULT false, p_commented boolean DEFAULT false, p_shared boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_post record;
    v_now timestamptz := now();
    v_ratio double precision;
    v_like_delta integer := 0;
BEGIN
    PERFORM feed._authorize_viewer(p_user_id);
    PERFORM feed._require_viewer(p_user_id);
    IF p_play_ms IS NULL OR p_play_ms < 0 THEN
        PERFORM feed._bad_argument('p_play_ms', format('must be zero or positive, got %s', coalesce(p_play_ms::text, 'null')));
    END IF;
    IF p_duration_ms IS NULL OR p_duration_ms <= 0 THEN
        PERFORM feed._bad_argument('p_duration_ms', format('must be positive, got %s', coalesce(p_duration_ms::text, 'null')));
    END IF;
    IF p_liked IS NULL OR p_commented IS NULL OR p_shared IS NULL THEN
        PERFORM feed._bad_argument(CASE WHEN p_liked IS NULL THEN 'p_liked' WHEN p_commented IS NULL THEN 'p_commented'
                                        ELSE 'p_shared' END, 'must not be null');
    END IF;
    v_post := feed._require_post(p_post_id);
    v_ratio := least(p_play_ms::double precision / p_duration_ms, 1);

    -- one viewing is one exposure: the view observes it, with all three flags
    PERFORM feed._apply_interaction(p_user_id, p_post_id, v_post.author_id, v_post.category, v_post.post_type,
                                    v_post.tags, 'view', 0, (p_play_ms / 1000), v_ratio, v_now,
                                    true, p_liked, p_commented, p_shared);
    IF p_liked THEN
        SELECT a.state_delta INTO v_like_delta
        FROM feed._apply_interaction(p_user_id, p_post_id, v_post.author_id, v_post.category, v_post.post_type,
                                     v_post.tags, 'like', 0, 0, NULL, v_now, false, false, false, false) a;
    END IF;
    IF p_commented THEN
        PERFORM feed._apply_interaction(p_user_id, p_post_id, v_post.author_id, v_post.category, v_post.post_type,
                                        v_post.tags, 'comment', 0, 0, NULL, v_now, false, false, false, false);
    END IF;
    IF p_shared THEN
        PERFORM feed._apply_interaction(p_user_id, p_post_id, v_post.author_id, v_post.category, v_post.post_type,
                                        v_post.tags, 'share', 0, 0, NULL, v_now, false, false, false, false);
    END IF;
    PERFORM feed._bump_post(p_post_id, p_likes => v_like_delta, p_comments => p_commented::int,
                            p_shares => p_shared::int, p_views => 1, p_watches => 1, p_watch_ratio => v_ratio);
END
$func$;
