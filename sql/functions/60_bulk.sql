-- Bulk loads: rebuilding everything the write path derives from the logs, and
-- the set-based checks behind `pgfeed import`.
--
-- feed.interactions (append-only) and feed.impressions are the source of
-- truth; post counters, trending scores, seen/hidden posts, affinities and the
-- viewer moving averages are derived state. feed._rebuild_derived_state()
-- recomputes all of it, set-based, so that the result equals what
-- record_interaction / record_impression(s) / record_watch_progress would have
-- left behind had every logged event gone through them, in (created_at,
-- interaction_id) order. Path-dependent state (floored like counts, decayed and
-- clamped category and tag affinities, moving averages) is replayed by window
-- functions where an exact closed form exists, and by ordered aggregates whose
-- transition functions repeat the write path's arithmetic operation for
-- operation where none does.

-------------------------------------------------------------------------------
-- _category_affinity_step: fold one action into a viewer's affinity for a
-- category with exactly _apply_interaction's arithmetic (the transition
-- function of _category_affinity_agg; the state is the table's own row).
-- No SET search_path: it runs once per logged action, and the SET clause alone
-- made the rebuild's slowest aggregate 60% slower (measured). Every operator
-- and function below is schema-qualified instead, so the path cannot matter.
CREATE OR REPLACE FUNCTION feed._category_affinity_step(
    p_state feed.user_category_affinity, p_user_id bigint, p_category text, p_signal double precision,
    p_at timestamptz, p_half_life double precision)
RETURNS feed.user_category_affinity
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $func$
BEGIN
    IF p_state.updated_at IS NULL THEN
        p_state.user_id := p_user_id;
        p_state.category := p_category;
        p_state.affinity := greatest(-1, least(1, p_signal));
        p_state.updated_at := p_at;
    ELSE
        -- c.affinity * decay + excluded.affinity, clamped to [-1, 1] (20_writes.sql)
        p_state.affinity := greatest(-1, least(1,
            (p_state.affinity OPERATOR(pg_catalog.*)
                CASE WHEN p_half_life OPERATOR(pg_catalog.>) 0
                     THEN pg_catalog.power(0.5, least(
                              greatest(extract(epoch FROM p_at OPERATOR(pg_catalog.-) p_state.updated_at), 0)
                              OPERATOR(pg_catalog./) p_half_life, 1000))
                     ELSE 1 END)
            OPERATOR(pg_catalog.+) greatest(-1, least(1, p_signal))));
        p_state.updated_at := greatest(p_state.updated_at, p_at);
    END IF;
    RETURN p_state;
END
$func$;

-------------------------------------------------------------------------------
-- _category_affinity_agg: a viewer's affinity for one category after a
-- sequence of actions; call it with ORDER BY created_at, interaction_id
CREATE OR REPLACE AGGREGATE feed._category_affinity_agg(
    bigint, text, double precision, timestamptz, double precision) (
    SFUNC = feed._category_affinity_step,
    STYPE = feed.user_category_affinity
);

-------------------------------------------------------------------------------
-- _engagement_step: fold one exposure into a viewer's moving averages with
-- exactly _apply_interaction's arithmetic (the transition function of
-- _engagement_agg; the state is the table's own row). The first observation
-- sets the rates outright. No SET search_path, for the reason given at
-- _category_affinity_step; every name is schema-qualified.
CREATE OR REPLACE FUNCTION feed._engagement_step(
    p_state feed.user_signals, p_user_id bigint, p_liked boolean, p_commented boolean, p_shared boolean,
    p_watch_ratio double precision, p_at timestamptz, p_alpha double precision)
RETURNS feed.user_signals
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $func$
BEGIN
    IF p_state.updated_at IS NULL THEN
        p_state.user_id := p_user_id;
        p_state.like_rate := p_liked::integer;
        p_state.comment_rate := p_commented::integer;
        p_state.share_rate := p_shared::integer;
        p_state.watch_ratio := p_watch_ratio;
        p_state.observations := 1;
        p_state.watches := (p_watch_ratio IS NOT NULL)::integer;
        p_state.updated_at := p_at;
    ELSE
        -- (1 - alpha) * old + alpha * new (20_writes.sql)
        p_state.like_rate := ((1 OPERATOR(pg_catalog.-) p_alpha) OPERATOR(pg_catalog.*) p_state.like_rate)
            OPERATOR(pg_catalog.+) (p_alpha OPERATOR(pg_catalog.*) p_liked::integer::double precision);
        p_state.comment_rate := ((1 OPERATOR(pg_catalog.-) p_alpha) OPERATOR(pg_catalog.*) p_state.comment_rate)
            OPERATOR(pg_catalog.+) (p_alpha OPERATOR(pg_catalog.*) p_commented::integer::double precision);
        p_state.share_rate := ((1 OPERATOR(pg_catalog.-) p_alpha) OPERATOR(pg_catalog.*) p_state.share_rate)
            OPERATOR(pg_catalog.+) (p_alpha OPERATOR(pg_catalog.*) p_shared::integer::double precision);
        IF p_watch_ratio IS NOT NULL THEN
            IF p_state.watch_ratio IS NULL THEN
                p_state.watch_ratio := p_watch_ratio;
            ELSE
                p_state.watch_ratio := ((1 OPERATOR(pg_catalog.-) p_alpha) OPERATOR(pg_catalog.*) p_state.watch_ratio)
                    OPERATOR(pg_catalog.+) (p_alpha OPERATOR(pg_catalog.*) p_watch_ratio);
            END IF;
            p_state.watches := p_state.watches OPERATOR(pg_catalog.+) 1;
        END IF;
        p_state.observations := p_state.observations OPERATOR(pg_catalog.+) 1;
        p_state.updated_at := greatest(p_state.updated_at, p_at);
    END IF;
    RETURN p_state;
END
$func$;

-------------------------------------------------------------------------------
-- _engagement_agg: a viewer's user_signals row after a sequence of
-- exposures; call it with ORDER BY created_at, interaction_id
CREATE OR REPLACE AGGREGATE feed._engagement_agg(
    bigint, boolean, boolean, boolean, double precision, timestamptz, double precision) (
    SFUNC = feed._engagement_step,
    STYPE = feed.user_signals
);

-------------------------------------------------------------------------------
-- _latest_states: every viewer's state of every post (liked, praised,
-- trophied, saved) as the log defines it: per viewer, post and state, the
-- value set by the latest call, ordered by (called_at, interaction_id), with
-- the actions of feed._state_actions() (20_writes.sql). NULL arrays: no
-- filter on that side. The write path keeps feed.user_post_state equal to it.
CREATE OR REPLACE FUNCTION feed._latest_states(p_user_ids bigint[], p_post_ids bigint[])
RETURNS TABLE (user_id bigint, post_id bigint, state text, active boolean, called_at timestamptz,
               interaction_id bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT DISTINCT ON (i.user_id, i.post_id, a.state)
           i.user_id, i.post_id, a.state, a.active, coalesce(i.called_at, i.created_at), i.interaction_id
    FROM feed.interactions i
    JOIN feed._state_actions() a ON a.action = i.action
    WHERE (p_user_ids IS NULL OR i.user_id = ANY (p_user_ids))
      AND (p_post_ids IS NULL OR i.post_id = ANY (p_post_ids))
    ORDER BY i.user_id, i.post_id, a.state, coalesce(i.called_at, i.created_at) DESC, i.interaction_id DESC
$func$;

-------------------------------------------------------------------------------
-- _rebuild_derived: the rebuild itself. NULL and NULL: everything (derived
-- tables are truncated and refilled). Otherwise the per-viewer state of
-- p_user_ids and the counters and scores of p_post_ids. Returns counts.
--
-- Replay rules (each mirrors one write function; "in order" means in call
-- order, ORDER BY coalesce(called_at, created_at), interaction_id: the write
-- path serialises one viewer's calls with feed._lock_viewer, so that is the
-- order in which it applied them; the arithmetic uses created_at, as it does):
-- * like, praise, trophy and save are per-user states (feed._latest_states):
--   user_post_state holds each viewer's latest call; posts.like_count,
--   praise_count, trophy_count, save_count, the same counts of
--   user_author_affinity, and user_post_type_affinity.interaction_count count
--   the posts in those states.
-- * watch_ratio_sum is summed in order, as the repeated additions did.
-- * trending_score: _trending_formula at now() with the operator's weights
--   for every post whose counters change (as the reflex update does); the
--   others keep their score until the heartbeat. Rewriting every post would
--   cost one new entry per post in every index of feed.posts, HNSW included.
-- * seen_posts counts one sighting per impression row and per interaction.
-- * hidden_posts keeps the first negative action (ON CONFLICT DO NOTHING).
-- * record_watch_progress logs a view with a watch ratio, then at most a like,
--   a comment and a share at the same instant, and observes engagement ONCE:
--   rows of the same viewer, post and created_at that directly follow such a
--   view, in that order, with no amount and no time spent, are its flags.
-- Interactions whose post no longer exists still count as sightings, hidden
-- posts and exposures; the per-author, per-type and per-category state needs
-- the post and skips them. Runs under a SHARE lock on the logs, so writes
-- wait for it instead of racing it.
-- On a Citus cluster each statement joins shards and the reference posts
-- that earlier statements of the same transaction wrote; in Citus' parallel
-- mode those writes may have gone over several connections to one worker,
-- and the join then fails ("placements that were modified over multiple
-- connections") depending on how connections were opened. Sequential mode
-- (one connection per worker) cannot meet that; on one server the setting is
-- an unused placeholder.
CREATE OR REPLACE FUNCTION feed._rebuild_derived(p_user_ids bigint[], p_post_ids bigint[])
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET work_mem = '256MB'
SET citus.multi_shard_modify_mode = 'sequential'
AS $func$
DECLARE
    v_all boolean := p_user_ids IS NULL AND p_post_ids IS NULL;
    v_users bigint[] := coalesce(p_user_ids, '{}');
    v_posts bigint[] := coalesce(p_post_ids, '{}');
    v_now timestamptz := now();
    v_weights record;
    v_half_life double precision := extract(epoch FROM feed._setting_interval('category_affinity_half_life'));
    v_alpha double precision := least(feed._setting_number('ema_alpha'), 1);
    v_result jsonb := '{}';
    v_count bigint;
    v_trigger_off boolean := false;
BEGIN
    LOCK TABLE feed.interactions, feed.impressions IN SHARE MODE;
    v_weights := feed._trending_weights();

    ---------------------------------------------------------------------------
    -- per-user states first: the counters below count them
    IF v_all THEN
        TRUNCATE feed.user_post_state;
    ELSE
        DELETE FROM feed.user_post_state t WHERE t.user_id = ANY (v_users);
    END IF;
    INSERT INTO feed.user_post_state (user_id, post_id, state, active, called_at, interaction_id)
    SELECT s.user_id, s.post_id, s.state, s.active, s.called_at, s.interaction_id
    FROM feed._latest_states(CASE WHEN NOT v_all THEN v_users END, NULL) s
    ORDER BY 1, 2, 3;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('user_post_states', v_count);

    ---------------------------------------------------------------------------
    -- posts: engine counters and trending score. The UPDATE sets the score the
    -- posts_rescore trigger would compute, so a full rebuild switches the
    -- trigger off for itself (it costs ~30 us a row: a minute per 2M posts);
    -- the ALTER is transactional and its lock lasts as long as the TRUNCATEs'
    -- below. Without ownership of feed.posts the trigger simply stays on, and
    -- so on a Citus cluster, where a reference table's triggers cannot be
    -- switched off.
    IF v_all AND NOT feed._in_citus_metadata('feed.posts'::regclass) THEN
        BEGIN
            ALTER TABLE feed.posts DISABLE TRIGGER posts_rescore;
            v_trigger_off := true;
        EXCEPTION WHEN insufficient_privilege OR undefined_object THEN
            v_trigger_off := false;
        END;
    END IF;
    WITH counts AS (
        SELECT i.post_id,
               count(*) FILTER (WHERE i.action = 'comment') AS comment_count,
               count(*) FILTER (WHERE i.action = 'share') AS share_count,
               count(*) FILTER (WHERE i.action = 'view') AS view_count,
               sum(i.value_amount) FILTER (WHERE i.action = 'gift') AS gift_amount,
               sum(i.value_amount) FILTER (WHERE i.action = 'tip') AS tip_amount,
               count(*) FILTER (WHERE i.action = 'report') AS report_count,
               count(*) FILTER (WHERE i.action = 'view' AND i.watch_ratio IS NOT NULL) AS watch_count
        FROM feed.interactions i
        WHERE v_all OR i.post_id = ANY (v_posts)
        GROUP BY i.post_id
    ), states AS (
        -- every post's viewers in each state: the table just rebuilt, or the log for some posts
        SELECT t.post_id,
               count(*) FILTER (WHERE t.state = 'liked' AND t.active) AS like_count,
               count(*) FILTER (WHERE t.state = 'praised' AND t.active) AS praise_count,
               count(*) FILTER (WHERE t.state = 'trophied' AND t.active) AS trophy_count,
               count(*) FILTER (WHERE t.state = 'saved' AND t.active) AS save_count
        FROM (SELECT u.post_id, u.state, u.active FROM feed.user_post_state u WHERE v_all
              UNION ALL
              SELECT l.post_id, l.state, l.active FROM feed._latest_states(NULL, v_posts) l WHERE NOT v_all) t
        GROUP BY t.post_id
    ), watched AS (
        -- the fence (OFFSET 0) costs nothing on one server; on Citus it makes
        -- the views an intermediate result summed on the coordinator, since
        -- an ordered aggregate over shards grouped by post fails to plan
        SELECT w.post_id, sum(w.watch_ratio ORDER BY w.created_at, w.interaction_id) AS watch_ratio_sum
        FROM (SELECT i.post_id, i.watch_ratio, i.created_at, i.interaction_id
              FROM feed.interactions i
              WHERE i.action = 'view' AND i.watch_ratio IS NOT NULL AND (v_all OR i.post_id = ANY (v_posts))
              OFFSET 0) w
        GROUP BY w.post_id
    ), fresh AS (
        SELECT p.post_id,
               coalesce(l.like_count, 0) AS like_count, coalesce(c.comment_count, 0) AS comment_count,
               coalesce(c.share_count, 0) AS share_count, coalesce(c.view_count, 0) AS view_count,
               coalesce(c.gift_amount, 0) AS gift_amount, coalesce(c.tip_amount, 0) AS tip_amount,
               coalesce(l.praise_count, 0) AS praise_count, coalesce(l.trophy_count, 0) AS trophy_count,
               coalesce(l.save_count, 0) AS save_count, coalesce(c.report_count, 0) AS report_count,
               coalesce(c.watch_count, 0) AS watch_count, coalesce(r.watch_ratio_sum, 0) AS watch_ratio_sum
        FROM feed.posts p
        LEFT JOIN counts c ON c.post_id = p.post_id
        LEFT JOIN states l ON l.post_id = p.post_id
        LEFT JOIN watched r ON r.post_id = p.post_id
        WHERE v_all OR p.post_id = ANY (v_posts)
    )
    UPDATE feed.posts p
    SET like_count = f.like_count, comment_count = f.comment_count, share_count = f.share_count,
        view_count = f.view_count, gift_amount = f.gift_amount, tip_amount = f.tip_amount,
        praise_count = f.praise_count, trophy_count = f.trophy_count, save_count = f.save_count,
        report_count = f.report_count, watch_count = f.watch_count, watch_ratio_sum = f.watch_ratio_sum,
        trending_score = feed._trending_formula(
            f.like_count, f.comment_count, f.share_count, f.gift_amount, f.tip_amount, p.created_at, v_now,
            v_weights.weight_likes, v_weights.weight_comments, v_weights.weight_shares, v_weights.weight_gifts,
            v_weights.weight_tips, v_weights.gravity)
    FROM fresh f
    WHERE p.post_id = f.post_id
      AND (NOT v_all
           OR (p.like_count, p.comment_count, p.share_count, p.view_count, p.gift_amount, p.tip_amount,
               p.praise_count, p.trophy_count, p.save_count, p.report_count, p.watch_count, p.watch_ratio_sum)
              IS DISTINCT FROM
              (f.like_count, f.comment_count, f.share_count, f.view_count, f.gift_amount, f.tip_amount,
               f.praise_count, f.trophy_count, f.save_count, f.report_count, f.watch_count, f.watch_ratio_sum));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('posts_updated', v_count);
    IF v_trigger_off THEN
        ALTER TABLE feed.posts ENABLE TRIGGER posts_rescore;
    END IF;

    ---------------------------------------------------------------------------
    -- per-viewer state: cleared, then refilled from the logs
    IF v_all THEN
        TRUNCATE feed.seen_posts, feed.hidden_posts, feed.user_author_affinity, feed.user_post_type_affinity,
                 feed.user_category_affinity, feed.user_tag_affinity, feed.user_signals;
    ELSE
        DELETE FROM feed.seen_posts t WHERE t.user_id = ANY (v_users);
        DELETE FROM feed.hidden_posts t WHERE t.user_id = ANY (v_users);
        DELETE FROM feed.user_author_affinity t WHERE t.user_id = ANY (v_users);
        DELETE FROM feed.user_post_type_affinity t WHERE t.user_id = ANY (v_users);
        DELETE FROM feed.user_category_affinity t WHERE t.user_id = ANY (v_users);
        DELETE FROM feed.user_tag_affinity t WHERE t.user_id = ANY (v_users);
        DELETE FROM feed.user_signals t WHERE t.user_id = ANY (v_users);
    END IF;

    -- seen_posts: one sighting per impression row and per interaction (_note_seen)
    INSERT INTO feed.seen_posts (user_id, post_id, first_seen_at, last_seen_at, times_seen)
    SELECT s.user_id, s.post_id, min(s.seen_at), max(s.seen_at), count(*)
    FROM (SELECT i.user_id, i.post_id, i.created_at AS seen_at
          FROM feed.interactions i WHERE v_all OR i.user_id = ANY (v_users)
          UNION ALL
          SELECT m.user_id, m.post_id, m.seen_at
          FROM feed.impressions m WHERE v_all OR m.user_id = ANY (v_users)) s
    GROUP BY s.user_id, s.post_id
    ORDER BY s.user_id, s.post_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('seen_posts', v_count);

    -- hidden_posts: the first negative action wins (in call order)
    INSERT INTO feed.hidden_posts (user_id, post_id, reason, created_at)
    SELECT DISTINCT ON (i.user_id, i.post_id) i.user_id, i.post_id, i.action, i.created_at
    FROM feed.interactions i
    WHERE i.action IN ('not_interested', 'dislike', 'report') AND (v_all OR i.user_id = ANY (v_users))
    ORDER BY i.user_id, i.post_id, coalesce(i.called_at, i.created_at), i.interaction_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('hidden_posts', v_count);

    -- user_author_affinity: the author's posts in each state; other kinds counted
    WITH ev AS NOT MATERIALIZED (
        SELECT i.user_id, p.author_id, i.action, i.created_at, i.interaction_id
        FROM feed.interactions i
        JOIN feed.posts p ON p.post_id = i.post_id
        WHERE p.author_id <> i.user_id AND (v_all OR i.user_id = ANY (v_users))
    ), states AS (
        SELECT t.user_id, p.author_id,
               count(*) FILTER (WHERE t.state = 'liked') AS like_count,
               count(*) FILTER (WHERE t.state = 'praised') AS praise_count,
               count(*) FILTER (WHERE t.state = 'trophied') AS trophy_count,
               count(*) FILTER (WHERE t.state = 'saved') AS save_count
        FROM feed.user_post_state t
        JOIN feed.posts p ON p.post_id = t.post_id
        WHERE t.active AND p.author_id <> t.user_id AND (v_all OR t.user_id = ANY (v_users))
        GROUP BY t.user_id, p.author_id
    ), counts AS (
        SELECT e.user_id, e.author_id,
               count(*) FILTER (WHERE e.action = 'comment') AS comment_count,
               count(*) FILTER (WHERE e.action = 'share') AS share_count,
               count(*) FILTER (WHERE e.action = 'gift') AS gift_count,
               count(*) FILTER (WHERE e.action = 'tip') AS tip_count,
               count(*) FILTER (WHERE e.action = 'view') AS view_count,
               count(*) FILTER (WHERE e.action IN ('not_interested', 'dislike', 'report')) AS negative_count,
               max(e.created_at) FILTER (WHERE e.action IN ('like', 'comment', 'share', 'gift', 'tip', 'praise',
                                                            'trophy', 'save')) AS last_positive_at
        FROM ev e
        GROUP BY e.user_id, e.author_id
    )
    INSERT INTO feed.user_author_affinity (
        user_id, author_id, like_count, praise_count, trophy_count, comment_count, share_count,
        save_count, gift_count, tip_count, view_count, negative_count, last_positive_at)
    SELECT c.user_id, c.author_id, coalesce(t.like_count, 0), coalesce(t.praise_count, 0),
           coalesce(t.trophy_count, 0), c.comment_count, c.share_count, coalesce(t.save_count, 0), c.gift_count,
           c.tip_count, c.view_count, c.negative_count, c.last_positive_at
    FROM counts c
    LEFT JOIN states t ON t.user_id = c.user_id AND t.author_id = c.author_id
    ORDER BY c.user_id, c.author_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('author_affinities', v_count);

    -- user_post_type_affinity: posts of the type the viewer likes, praised or
    -- gave a trophy (states); a row exists once there was such an action
    INSERT INTO feed.user_post_type_affinity (user_id, post_type, interaction_count, last_interaction_at)
    SELECT e.user_id, e.post_type, coalesce(t.interaction_count, 0), e.last_interaction_at
    FROM (SELECT i.user_id, p.post_type, max(i.created_at) AS last_interaction_at
          FROM feed.interactions i
          JOIN feed.posts p ON p.post_id = i.post_id
          WHERE i.action IN ('like', 'praise', 'trophy') AND (v_all OR i.user_id = ANY (v_users))
          GROUP BY i.user_id, p.post_type) e
    LEFT JOIN (SELECT u.user_id, p.post_type, count(*) AS interaction_count
               FROM feed.user_post_state u
               JOIN feed.posts p ON p.post_id = u.post_id
               WHERE u.active AND u.state IN ('liked', 'praised', 'trophied') AND (v_all OR u.user_id = ANY (v_users))
               GROUP BY u.user_id, p.post_type) t ON t.user_id = e.user_id AND t.post_type = e.post_type
    ORDER BY 1, 2;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('post_type_affinities', v_count);

    -- user_category_affinity: decayed, clamped, in order (ordered aggregate)
    INSERT INTO feed.user_category_affinity (user_id, category, affinity, updated_at)
    SELECT (a.s).user_id, (a.s).category, (a.s).affinity, (a.s).updated_at
    FROM (SELECT feed._category_affinity_agg(i.user_id, p.category, g.signal, i.created_at, v_half_life
                                             ORDER BY coalesce(i.called_at, i.created_at), i.interaction_id) AS s
          FROM feed.interactions i
          JOIN feed.posts p ON p.post_id = i.post_id
          JOIN (SELECT a.action, feed._category_signal(a.action) AS signal
                FROM unnest(feed._actions()) AS a(action)
                OFFSET 0) g ON g.action = i.action  -- a fence: the signal is computed once per action
          WHERE v_all OR i.user_id = ANY (v_users)
          GROUP BY i.user_id, p.category COLLATE "C") a  -- byte order: same groups, faster sort
    ORDER BY 1, 2;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('category_affinities', v_count);

    -- user_tag_affinity: the same aggregate over each tag of the post (the
    -- post's current tags); skipped while no post has tags
    v_count := 0;
    IF EXISTS (SELECT 1 FROM feed.posts p WHERE cardinality(p.tags) > 0) THEN
        INSERT INTO feed.user_tag_affinity (user_id, tag, affinity, updated_at)
        SELECT (a.s).user_id, (a.s).category, (a.s).affinity, (a.s).updated_at
        FROM (SELECT feed._category_affinity_agg(i.user_id, t.tag, g.signal, i.created_at, v_half_life
                                                 ORDER BY coalesce(i.called_at, i.created_at), i.interaction_id) AS s
              FROM feed.interactions i
              JOIN feed.posts p ON p.post_id = i.post_id
              CROSS JOIN LATERAL (SELECT DISTINCT u.tag FROM unnest(p.tags) AS u(tag) WHERE u.tag IS NOT NULL) t
              JOIN (SELECT a.action, feed._category_signal(a.action) AS signal
                    FROM unnest(feed._actions()) AS a(action)
                    OFFSET 0) g ON g.action = i.action
              WHERE cardinality(p.tags) > 0 AND (v_all OR i.user_id = ANY (v_users))
              GROUP BY i.user_id, t.tag COLLATE "C") a
        ORDER BY 1, 2;
        GET DIAGNOSTICS v_count = ROW_COUNT;
    END IF;
    v_result := v_result || jsonb_build_object('tag_affinities', v_count);

    -- user_signals: one observation per record_interaction exposure (view,
    -- like, comment, share) and one per record_watch_progress (ordered aggregate)
    WITH contested AS (
        -- instants where a watch (a view with a ratio) and a possible flag row
        -- (like, comment or share without amount or time spent) of the same
        -- viewer and post coincide; elsewhere a watch has no flags
        SELECT DISTINCT c.user_id, c.post_id, c.created_at
        FROM feed.interactions c
        WHERE c.action IN ('like', 'comment', 'share') AND c.watch_ratio IS NULL
          AND c.value_amount = 0 AND c.time_spent_seconds = 0 AND (v_all OR c.user_id = ANY (v_users))
          AND EXISTS (SELECT 1 FROM feed.interactions v
                      WHERE v.user_id = c.user_id AND v.post_id = c.post_id AND v.created_at = c.created_at
                        AND v.action = 'view' AND v.watch_ratio IS NOT NULL)
    ), same_instant AS (
        -- every row of those instants, numbered per watch (pos 1 is the view)
        SELECT r.*, row_number() OVER (PARTITION BY r.user_id, r.post_id, r.created_at, r.watch_no
                                       ORDER BY r.interaction_id) AS pos
        FROM (SELECT i.interaction_id, i.user_id, i.post_id, i.created_at, i.action,
                     CASE WHEN i.watch_ratio IS NULL AND i.value_amount = 0 AND i.time_spent_seconds = 0
                          THEN CASE i.action WHEN 'like' THEN 1 WHEN 'comment' THEN 2 WHEN 'share' THEN 3 END
                     END AS flag_rank,
                     count(*) FILTER (WHERE i.action = 'view' AND i.watch_ratio IS NOT NULL)
                         OVER (PARTITION BY i.user_id, i.post_id, i.created_at ORDER BY i.interaction_id)
                         AS watch_no
              FROM feed.interactions i
              JOIN contested k ON k.user_id = i.user_id AND k.post_id = i.post_id AND k.created_at = i.created_at) r
        WHERE r.watch_no > 0
    ), chained AS (
        -- after the view: like, comment, share, each at most once and in that order
        SELECT c.*, bool_and(c.pos = 1 OR coalesce(c.flag_rank > coalesce(c.prev_rank, 0), false))
                        OVER (PARTITION BY c.user_id, c.post_id, c.created_at, c.watch_no ORDER BY c.pos)
                        AS in_watch
        FROM (SELECT s.*, lag(s.flag_rank) OVER (PARTITION BY s.user_id, s.post_id, s.created_at, s.watch_no
                                                  ORDER BY s.pos) AS prev_rank
              FROM same_instant s) c
    ), flags AS (
        SELECT min(c.interaction_id) AS view_id,
               coalesce(bool_or(c.action = 'like') FILTER (WHERE c.in_watch AND c.pos > 1), false) AS liked,
               coalesce(bool_or(c.action = 'comment') FILTER (WHERE c.in_watch AND c.pos > 1), false) AS commented,
               coalesce(bool_or(c.action = 'share') FILTER (WHERE c.in_watch AND c.pos > 1), false) AS shared
        FROM chained c
        GROUP BY c.user_id, c.post_id, c.created_at, c.watch_no
    ), observations AS (
        SELECT i.user_id, i.interaction_id, i.created_at, coalesce(i.called_at, i.created_at) AS called_at,
               i.action = 'like' AS liked,
               i.action = 'comment' AS commented, i.action = 'share' AS shared,
               NULL::double precision AS watch_ratio
        FROM feed.interactions i
        WHERE i.action IN ('view', 'like', 'comment', 'share') AND i.watch_ratio IS NULL
          AND (v_all OR i.user_id = ANY (v_users))
          AND NOT EXISTS (SELECT 1 FROM chained c
                          WHERE c.interaction_id = i.interaction_id AND c.in_watch AND c.pos > 1)
        UNION ALL
        SELECT v.user_id, v.interaction_id, v.created_at, coalesce(v.called_at, v.created_at),
               coalesce(f.liked, false), coalesce(f.commented, false),
               coalesce(f.shared, false), v.watch_ratio
        FROM feed.interactions v
        LEFT JOIN flags f ON f.view_id = v.interaction_id
        WHERE v.action = 'view' AND v.watch_ratio IS NOT NULL AND (v_all OR v.user_id = ANY (v_users))
    )
    INSERT INTO feed.user_signals (user_id, like_rate, comment_rate, share_rate, watch_ratio,
                                   observations, watches, updated_at)
    SELECT (a.s).user_id, (a.s).like_rate, (a.s).comment_rate, (a.s).share_rate, (a.s).watch_ratio,
           (a.s).observations, (a.s).watches, (a.s).updated_at
    FROM (SELECT feed._engagement_agg(o.user_id, o.liked, o.commented, o.shared, o.watch_ratio, o.created_at,
                                      v_alpha ORDER BY o.called_at, o.interaction_id) AS s
          FROM observations o
          GROUP BY o.user_id) a
    ORDER BY 1;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_result := v_result || jsonb_build_object('user_signals', v_count);

    ---------------------------------------------------------------------------
    -- taste vectors belong to 40_vectors.sql; called when it provides them
    IF v_all THEN
        IF to_regprocedure('feed._rebuild_taste_vectors()') IS NOT NULL THEN
            PERFORM feed._rebuild_taste_vectors();
            v_result := v_result || jsonb_build_object('taste_vectors', true);
        END IF;
    ELSIF to_regprocedure('feed._rebuild_taste_vectors(bigint[])') IS NOT NULL THEN
        PERFORM feed._rebuild_taste_vectors(v_users);
        v_result := v_result || jsonb_build_object('taste_vectors', true);
    END IF;

    PERFORM feed._record_job_run(CASE WHEN v_all THEN 'rebuild' ELSE 'rebuild_partial' END, v_now, v_result);
    RETURN v_result;
END
$func$;

-------------------------------------------------------------------------------
-- _rebuild_derived_state: recompute every piece of derived state from
-- feed.interactions and feed.impressions (after a bulk load, an import, or to
-- repair drift). Holds exclusive locks on the derived tables and on
-- feed.posts until the transaction ends: feeds wait for it, so run it off-peak.
CREATE OR REPLACE FUNCTION feed._rebuild_derived_state()
RETURNS jsonb
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT feed._rebuild_derived(NULL, NULL)
$func$;

-------------------------------------------------------------------------------
-- _rebuild_derived_state_for: the same for some viewers (seen/hidden posts,
-- affinities, moving averages) and some posts (counters, trending score)
CREATE OR REPLACE FUNCTION feed._rebuild_derived_state_for(p_user_ids bigint[], p_post_ids bigint[])
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_user_ids IS NULL OR array_position(p_user_ids, NULL) IS NOT NULL THEN
        PERFORM feed._bad_argument('p_user_ids', 'must be an array without nulls (''{}'' for none)');
    END IF;
    IF p_post_ids IS NULL OR array_position(p_post_ids, NULL) IS NOT NULL THEN
        PERFORM feed._bad_argument('p_post_ids', 'must be an array without nulls (''{}'' for none)');
    END IF;
    RETURN feed._rebuild_derived(
        ARRAY(SELECT DISTINCT u FROM unnest(p_user_ids) AS u ORDER BY 1),
        ARRAY(SELECT DISTINCT p FROM unnest(p_post_ids) AS p ORDER BY 1));
END
$func$;

-------------------------------------------------------------------------------
-- rebuild_counters: recompute every engine-maintained column and signal from
-- the logs (contract §3.3: after a restore, a repair, or an upgrade that
-- changed what a counter means) and report what changed, as counts: posts
-- whose counters changed, and per derived table the rows added, removed or
-- changed (by key). Takes the rebuild's locks: run it off-peak. Sequential
-- on Citus from the start, as _rebuild_derived: the copies taken before the
-- rebuild would otherwise read the shards over several connections, and the
-- rebuild's writes then fail as described there.
CREATE OR REPLACE FUNCTION feed.rebuild_counters()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET citus.multi_shard_modify_mode = 'sequential'
AS $func$
DECLARE
    -- each derived table and its key
    v_tables constant text[][] := ARRAY[
        ['user_post_state', 'user_id, post_id, state'], ['seen_posts', 'user_id, post_id'],
        ['hidden_posts', 'user_id, post_id'], ['user_author_affinity', 'user_id, author_id'],
        ['user_post_type_affinity', 'user_id, post_type'], ['user_category_affinity', 'user_id, category'],
        ['user_tag_affinity', 'user_id, tag'], ['user_signals', 'user_id'], ['user_taste', 'user_id']];
    v_changes jsonb := '{}';
    v_rebuild jsonb;
    v_count bigint;
    i integer;
BEGIN
    FOR i IN 1 .. array_length(v_tables, 1) LOOP
        CONTINUE WHEN to_regclass('feed.' || v_tables[i][1]) IS NULL;
        EXECUTE format('DROP TABLE IF EXISTS pg_temp.%I', '_rc_' || v_tables[i][1]);
        EXECUTE format('CREATE TEMP TABLE %I ON COMMIT DROP AS SELECT * FROM feed.%I',
                       '_rc_' || v_tables[i][1], v_tables[i][1]);
    END LOOP;

    v_rebuild := feed._rebuild_derived_state();

    FOR i IN 1 .. array_length(v_tables, 1) LOOP
        CONTINUE WHEN to_regclass('feed.' || v_tables[i][1]) IS NULL;
        -- a key counts once whether its row was added, removed or changed
        EXECUTE format(
            'SELECT count(*) FROM (SELECT %1$s FROM (TABLE pg_temp.%2$I EXCEPT ALL TABLE feed.%3$I) d'
            ' UNION SELECT %1$s FROM (TABLE feed.%3$I EXCEPT ALL TABLE pg_temp.%2$I) e) k',
            v_tables[i][2], '_rc_' || v_tables[i][1], v_tables[i][1])
        INTO v_count;
        v_changes := v_changes || jsonb_build_object(v_tables[i][1], v_count);
        EXECUTE format('DROP TABLE pg_temp.%I', '_rc_' || v_tables[i][1]);
    END LOOP;
    RETURN jsonb_build_object('posts', coalesce((v_rebuild ->> 'posts_updated')::bigint, 0)) || v_changes;
END
$func$;

-------------------------------------------------------------------------------
-- _input_problem: NULL when p_value is valid input for p_type ('timestamptz',
-- 'boolean' or 'text[]'), else why not (the server's own message). Cheap for valid
-- values on PostgreSQL 16+ (pg_input_is_valid); older servers try the cast.
CREATE OR REPLACE FUNCTION feed._input_problem(p_value text, p_type text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_type NOT IN ('timestamptz', 'boolean', 'text[]') THEN
        PERFORM feed._bad_argument('p_type', format('expected timestamptz, boolean or text[], got %L', p_type));
    END IF;
    -- nested, so that PostgreSQL 15 never plans the call to a function it lacks
    IF current_setting('server_version_num')::integer >= 160000 THEN
        IF pg_input_is_valid(p_value, p_type) THEN
            RETURN NULL;
        END IF;
    END IF;
    BEGIN
        IF p_type = 'timestamptz' THEN
            PERFORM p_value::timestamptz;
        ELSIF p_type = 'text[]' THEN
            PERFORM p_value::text[];
        ELSE
            PERFORM p_value::boolean;
        END IF;
    EXCEPTION WHEN data_exception THEN
        RETURN SQLERRM;
    END;
    RETURN NULL;
END
$func$;

-------------------------------------------------------------------------------
-- _vector_problem: NULL when p_value is a valid embedding of p_dims
-- dimensions (text form '[1,2,3]'), else why not
CREATE OR REPLACE FUNCTION feed._vector_problem(p_value text, p_dims integer)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_vector @extschema:vector@.vector;
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        v_vector := p_value::@extschema:vector@.vector;
    EXCEPTION WHEN data_exception OR program_limit_exceeded THEN
        RETURN SQLERRM;
    END;
    IF p_dims IS NOT NULL AND @extschema:vector@.vector_dims(v_vector) <> p_dims THEN
        RETURN format('expected %s dimensions, not %s', p_dims, @extschema:vector@.vector_dims(v_vector));
    END IF;
    RETURN NULL;
END
$func$;

-------------------------------------------------------------------------------
-- _is_integer_literal: p_value spells an integer (digits, optional sign)
-- within [p_min, p_max]. No SET search_path, so that it inlines into the
-- import checks (a SET clause makes it a function call per value); every
-- operator is schema-qualified instead.
CREATE OR REPLACE FUNCTION feed._is_integer_literal(p_value text, p_min numeric, p_max numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $func$
    SELECT CASE WHEN p_value OPERATOR(pg_catalog.~) '^[+-]?[0-9]{1,19}$'
                THEN p_value::numeric OPERATOR(pg_catalog.>=) p_min
                     AND p_value::numeric OPERATOR(pg_catalog.<=) p_max
                ELSE false END
$func$;

-------------------------------------------------------------------------------
-- _is_number_literal: p_value spells a decimal number (1, -2.5, .5, 1e3); not
-- NaN or Infinity. No SET search_path, for the reason given above.
CREATE OR REPLACE FUNCTION feed._is_number_literal(p_value text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $func$
    SELECT p_value OPERATOR(pg_catalog.~) '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$'
$func$;

-------------------------------------------------------------------------------
-- _import_columns: the CSV columns `pgfeed import` accepts per kind, in
-- their canonical order, and which ones a file must have. importer.py stages
-- a file in pg_temp.pgfeed_import: "record" (the row's ordinal in the file)
-- and one text column for each of these.
CREATE OR REPLACE FUNCTION feed._import_columns(p_kind text)
RETURNS TABLE (column_name text, required boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    CASE p_kind
        WHEN 'interactions' THEN
            RETURN QUERY VALUES ('user_id', true), ('post_id', true), ('action', true), ('value_amount', false),
                                ('time_spent_seconds', false), ('created_at', false), ('watch_ratio', false);
        WHEN 'posts' THEN
            RETURN QUERY VALUES ('post_id', true), ('author_id', true), ('category', true), ('post_type', false),
                                ('created_at', false), ('collective_id', false), ('visibility', false),
                                ('is_deleted', false), ('media_ready', false), ('duration_ms', false),
                                ('embedding', false), ('tags', false);
        WHEN 'follows' THEN
            RETURN QUERY VALUES ('follower_id', true), ('followee_id', true), ('created_at', false);
        ELSE
            PERFORM feed._bad_argument('p_kind', format('unknown kind %L; expected interactions, posts or follows',
                                                        p_kind));
    END CASE;
END
$func$;

-------------------------------------------------------------------------------
-- _import_problem: the first bad row of pg_temp.pgfeed_import (see
-- _import_columns), checked set-based: its record number and what is wrong,
-- the column name first. No row when every row is good. Values are trimmed
-- and empty ones count as missing. Each CASE branch may rely on the ones
-- before it (a cast only runs on a value already found well-formed).
CREATE OR REPLACE FUNCTION feed._import_problem(p_kind text)
RETURNS TABLE (record bigint, problem text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    c_bigint_min constant numeric := -9223372036854775808;
    c_bigint_max constant numeric := 9223372036854775807;
    v_dims integer;
BEGIN
    PERFORM feed._import_columns(p_kind);  -- validates p_kind
    IF p_kind = 'interactions' THEN
        RETURN QUERY
        SELECT c.record, c.problem
        FROM (SELECT n.record, CASE
                  WHEN n.user_id IS NULL THEN 'user_id: missing'
                  WHEN NOT feed._is_integer_literal(n.user_id, c_bigint_min, c_bigint_max)
                      THEN format('user_id: %L is not an integer id', n.user_id)
                  WHEN n.post_id IS NULL THEN 'post_id: missing'
                  WHEN NOT feed._is_integer_literal(n.post_id, c_bigint_min, c_bigint_max)
                      THEN format('post_id: %L is not an integer id', n.post_id)
                  WHEN n.action IS NULL THEN 'action: missing'
                  WHEN NOT n.action = ANY (feed._actions())
                      THEN format('action: unknown action %L; expected one of %s',
                                  n.action, array_to_string(feed._actions(), ', '))
                  WHEN n.value_amount IS NOT NULL AND NOT feed._is_number_literal(n.value_amount)
                      THEN format('value_amount: %L is not a number', n.value_amount)
                  WHEN n.action IN ('gift', 'tip') AND coalesce(n.value_amount::numeric, 0) <= 0
                      THEN format('value_amount: must be positive for %s, got %s', n.action,
                                  coalesce(n.value_amount, 'nothing'))
                  WHEN n.action NOT IN ('gift', 'tip') AND coalesce(n.value_amount::numeric, 0) <> 0
                      THEN format('value_amount: must be 0 for %s, got %s', n.action, n.value_amount)
                  WHEN n.value_amount::numeric >= 1e10
                       OR round(n.value_amount::numeric, 2) = 0 AND n.value_amount::numeric <> 0
                      THEN format('value_amount: %s does not fit numeric(12,2)', n.value_amount)
                  WHEN n.time_spent_seconds IS NOT NULL
                       AND NOT feed._is_integer_literal(n.time_spent_seconds, 0, 2147483647)
                      THEN format('time_spent_seconds: must be a whole number of seconds, zero or positive, got %L',
                                  n.time_spent_seconds)
                  WHEN n.created_at IS NOT NULL AND feed._input_problem(n.created_at, 'timestamptz') IS NOT NULL
                      THEN 'created_at: ' || feed._input_problem(n.created_at, 'timestamptz')
                  WHEN NOT isfinite(n.created_at::timestamptz)
                      THEN format('created_at: must be a finite time, got %s', n.created_at)
                  WHEN n.watch_ratio IS NOT NULL
                       AND NOT (feed._is_number_literal(n.watch_ratio) AND n.watch_ratio::numeric BETWEEN 0 AND 1)
                      THEN format('watch_ratio: must be a number between 0 and 1, got %L', n.watch_ratio)
                  WHEN n.watch_ratio IS NOT NULL AND n.action <> 'view'
                      THEN format('watch_ratio: only a view has one, not a %s', n.action)
                  WHEN NOT EXISTS (SELECT 1 FROM feed.posts p WHERE p.post_id = n.post_id::bigint)
                      THEN format('post_id: post %s does not exist', n.post_id::bigint)
              END AS problem
              FROM (SELECT s.record, nullif(btrim(s.user_id), '') AS user_id, nullif(btrim(s.post_id), '') AS post_id,
                           nullif(btrim(s.action), '') AS action, nullif(btrim(s.value_amount), '') AS value_amount,
                           nullif(btrim(s.time_spent_seconds), '') AS time_spent_seconds,
                           nullif(btrim(s.created_at), '') AS created_at,
                           nullif(btrim(s.watch_ratio), '') AS watch_ratio
                    FROM pg_temp.pgfeed_import s) n) c
        WHERE c.problem IS NOT NULL
        ORDER BY c.record
        LIMIT 1;
    ELSIF p_kind = 'posts' THEN
        SELECT nullif(a.atttypmod, -1) INTO v_dims FROM pg_attribute a
        WHERE a.attrelid = 'feed.posts'::regclass AND a.attname = 'embedding' AND NOT a.attisdropped;
        RETURN QUERY
        SELECT c.record, c.problem
        FROM (SELECT n.record, CASE
                  WHEN n.post_id IS NULL THEN 'post_id: missing'
                  WHEN NOT n.post_id_ok THEN format('post_id: %L is not an integer id', n.post_id)
                  WHEN n.author_id IS NULL THEN 'author_id: missing'
                  WHEN NOT feed._is_integer_literal(n.author_id, c_bigint_min, c_bigint_max)
                      THEN format('author_id: %L is not an integer id', n.author_id)
                  WHEN n.category IS NULL THEN 'category: missing'
                  WHEN n.created_at IS NOT NULL AND feed._input_problem(n.created_at, 'timestamptz') IS NOT NULL
                      THEN 'created_at: ' || feed._input_problem(n.created_at, 'timestamptz')
                  WHEN NOT isfinite(n.created_at::timestamptz)
                      THEN format('created_at: must be a finite time, got %s', n.created_at)
                  WHEN n.collective_id IS NOT NULL
                       AND NOT feed._is_integer_literal(n.collective_id, c_bigint_min, c_bigint_max)
                      THEN format('collective_id: %L is not an integer id', n.collective_id)
                  WHEN n.visibility NOT IN ('public', 'shadow_ban', 'removed')
                      THEN format('visibility: %L is not one of public, shadow_ban, removed', n.visibility)
                  WHEN n.is_deleted IS NOT NULL AND feed._input_problem(n.is_deleted, 'boolean') IS NOT NULL
                      THEN format('is_deleted: %L is not a boolean', n.is_deleted)
                  WHEN n.media_ready IS NOT NULL AND feed._input_problem(n.media_ready, 'boolean') IS NOT NULL
                      THEN format('media_ready: %L is not a boolean', n.media_ready)
                  WHEN n.duration_ms IS NOT NULL AND NOT feed._is_integer_literal(n.duration_ms, 0, 2147483647)
                      THEN format('duration_ms: must be a whole number of milliseconds, zero or positive, got %L',
                                  n.duration_ms)
                  WHEN n.embedding IS NOT NULL AND feed._vector_problem(n.embedding, v_dims) IS NOT NULL
                      THEN 'embedding: ' || feed._vector_problem(n.embedding, v_dims)
                  WHEN n.tags IS NOT NULL AND feed._input_problem(n.tags, 'text[]') IS NOT NULL
                      THEN format('tags: %L is not an array literal such as {jazz,"free jazz"}: %s', n.tags,
                                  feed._input_problem(n.tags, 'text[]'))
                  WHEN n.tags IS NOT NULL AND feed._tags_problem(n.tags::text[]) IS NOT NULL
                      THEN 'tags: ' || feed._tags_problem(n.tags::text[])
                  WHEN n.occurrence > 1
                      THEN format('post_id: post %s appears more than once in the file', n.post_id::bigint)
                  WHEN EXISTS (SELECT 1 FROM feed.posts p WHERE p.post_id = n.post_id::bigint)
                      THEN format('post_id: post %s already exists', n.post_id::bigint)
              END AS problem
              FROM (SELECT v.*,
                           -- window functions run for every row: only well-formed ids are cast
                           row_number() OVER (PARTITION BY CASE WHEN v.post_id_ok THEN v.post_id::bigint END
                                              ORDER BY v.record) AS occurrence
                    FROM (SELECT s.record, nullif(btrim(s.post_id), '') AS post_id,
                                 feed._is_integer_literal(nullif(btrim(s.post_id), ''), c_bigint_min, c_bigint_max)
                                     AS post_id_ok,
                                 nullif(btrim(s.author_id), '') AS author_id, nullif(btrim(s.category), '') AS category,
                                 nullif(btrim(s.created_at), '') AS created_at,
                                 nullif(btrim(s.collective_id), '') AS collective_id,
                                 nullif(btrim(s.visibility), '') AS visibility,
                                 nullif(btrim(s.is_deleted), '') AS is_deleted,
                                 nullif(btrim(s.media_ready), '') AS media_ready,
                                 nullif(btrim(s.duration_ms), '') AS duration_ms,
                                 nullif(btrim(s.embedding), '') AS embedding,
                                 nullif(btrim(s.tags), '') AS tags
                          FROM pg_temp.pgfeed_import s) v) n) c
        WHERE c.problem IS NOT NULL
        ORDER BY c.record
        LIMIT 1;
    ELSE
        RETURN QUERY
        SELECT c.record, c.problem
        FROM (SELECT n.record, CASE
                  WHEN n.follower_id IS NULL THEN 'follower_id: missing'
                  WHEN NOT n.follower_ok THEN format('follower_id: %L is not an integer id', n.follower_id)
                  WHEN n.followee_id IS NULL THEN 'followee_id: missing'
                  WHEN NOT n.followee_ok THEN format('followee_id: %L is not an integer id', n.followee_id)
                  WHEN n.follower_id::bigint = n.followee_id::bigint
                      THEN format('followee_id: user %s cannot follow themselves', n.followee_id::bigint)
                  WHEN n.created_at IS NOT NULL AND feed._input_problem(n.created_at, 'timestamptz') IS NOT NULL
                      THEN 'created_at: ' || feed._input_problem(n.created_at, 'timestamptz')
                  WHEN NOT isfinite(n.created_at::timestamptz)
                      THEN format('created_at: must be a finite time, got %s', n.created_at)
                  WHEN n.occurrence > 1
                      THEN format('followee_id: %s already follows %s earlier in the file',
                                  n.follower_id::bigint, n.followee_id::bigint)
              END AS problem
              FROM (SELECT v.*,
                           -- window functions run for every row: only well-formed ids are cast
                           row_number() OVER (PARTITION BY CASE WHEN v.follower_ok AND v.followee_ok
                                                                THEN v.follower_id::bigint END,
                                                           CASE WHEN v.follower_ok AND v.followee_ok
                                                                THEN v.followee_id::bigint END
                                              ORDER BY v.record) AS occurrence
                    FROM (SELECT s.record, nullif(btrim(s.follower_id), '') AS follower_id,
                                 nullif(btrim(s.followee_id), '') AS followee_id,
                                 feed._is_integer_literal(nullif(btrim(s.follower_id), ''), c_bigint_min, c_bigint_max)
                                     AS follower_ok,
                                 feed._is_integer_literal(nullif(btrim(s.followee_id), ''), c_bigint_min, c_bigint_max)
                                     AS followee_ok,
                                 nullif(btrim(s.created_at), '') AS created_at
                          FROM pg_temp.pgfeed_import s) v) n) c
        WHERE c.problem IS NOT NULL
        ORDER BY c.record
        LIMIT 1;
    END IF;
END
$func$;

-------------------------------------------------------------------------------
-- _import_apply: insert the rows of pg_temp.pgfeed_import (checked by
-- _import_problem), in file order, then (interactions) rebuild the derived
-- state from the log: all of it, or only the viewers and posts of the file
-- when it is small next to the log and 40_vectors.sql can rebuild taste
-- vectors per viewer. Returns counts; follows already present are skipped.
-- Sequential on Citus, as _rebuild_derived: the log insert would otherwise
-- write the shards over several connections and the rebuild after it fail.
CREATE OR REPLACE FUNCTION feed._import_apply(p_kind text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET citus.multi_shard_modify_mode = 'sequential'
AS $func$
DECLARE
    v_rows bigint;
    v_inserted bigint;
    v_users bigint[];
    v_posts bigint[];
    v_result jsonb := '{}';
BEGIN
    PERFORM feed._import_columns(p_kind);  -- validates p_kind
    SELECT count(*) INTO v_rows FROM pg_temp.pgfeed_import;
    IF p_kind = 'interactions' THEN
        INSERT INTO feed.interactions (user_id, post_id, action, value_amount, time_spent_seconds, created_at,
                                       watch_ratio)
        SELECT btrim(s.user_id)::bigint, btrim(s.post_id)::bigint, btrim(s.action),
               coalesce(nullif(btrim(s.value_amount), '')::numeric, 0),
               coalesce(nullif(btrim(s.time_spent_seconds), '')::integer, 0),
               coalesce(nullif(btrim(s.created_at), '')::timestamptz, now()),
               nullif(btrim(s.watch_ratio), '')::numeric::double precision
        FROM pg_temp.pgfeed_import s
        ORDER BY s.record;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        -- the rows without created_at are remembered by their import keys (importer.py)
        IF to_regclass('pg_temp.pgfeed_import_keys') IS NOT NULL THEN
            INSERT INTO feed.import_keys (import_key)
            SELECT k.import_key FROM pg_temp.pgfeed_import_keys k
            WHERE EXISTS (SELECT 1 FROM pg_temp.pgfeed_import s WHERE s.record = k.record)
            ON CONFLICT (import_key) DO NOTHING;
        END IF;
        IF to_regprocedure('feed._rebuild_taste_vectors(bigint[])') IS NOT NULL
           AND v_inserted * 10 < (SELECT count(*) FROM feed.interactions) THEN
            SELECT array_agg(DISTINCT btrim(s.user_id)::bigint), array_agg(DISTINCT btrim(s.post_id)::bigint)
            INTO v_users, v_posts
            FROM pg_temp.pgfeed_import s;
            v_result := jsonb_build_object('rebuild', feed._rebuild_derived_state_for(v_users, v_posts),
                                           'rebuild_scope', 'touched');
        ELSE
            v_result := jsonb_build_object('rebuild', feed._rebuild_derived_state(), 'rebuild_scope', 'all');
        END IF;
    ELSIF p_kind = 'posts' THEN
        INSERT INTO feed.posts (post_id, author_id, category, post_type, created_at, collective_id, visibility,
                                is_deleted, media_ready, duration_ms, embedding, tags)
        SELECT btrim(s.post_id)::bigint, btrim(s.author_id)::bigint, btrim(s.category),
               coalesce(nullif(btrim(s.post_type), ''), 'post'),
               coalesce(nullif(btrim(s.created_at), '')::timestamptz, now()),
               nullif(btrim(s.collective_id), '')::bigint,
               coalesce(nullif(btrim(s.visibility), ''), 'public'),
               coalesce(nullif(btrim(s.is_deleted), '')::boolean, false),
               coalesce(nullif(btrim(s.media_ready), '')::boolean, true),
               nullif(btrim(s.duration_ms), '')::integer,
               nullif(btrim(s.embedding), '')::@extschema:vector@.vector,
               nullif(btrim(s.tags), '')::text[]
        FROM pg_temp.pgfeed_import s
        ORDER BY s.record;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
    ELSE
        INSERT INTO feed.follows (follower_id, followee_id, created_at)
        SELECT btrim(s.follower_id)::bigint, btrim(s.followee_id)::bigint,
               coalesce(nullif(btrim(s.created_at), '')::timestamptz, now())
        FROM pg_temp.pgfeed_import s
        ORDER BY s.record
        ON CONFLICT (follower_id, followee_id) DO NOTHING;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
    END IF;
    RETURN v_result || jsonb_build_object('kind', p_kind, 'rows', v_rows, 'inserted', v_inserted,
                                          'skipped', v_rows - v_inserted);
END
$func$;
