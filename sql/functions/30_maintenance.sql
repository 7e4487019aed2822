-- Scheduled work (contract §3.3): the trending heartbeat and run_maintenance,
-- which cron or pg_cron calls every few minutes.

-------------------------------------------------------------------------------
-- _record_job_run: remember when a job ran and what it did (doctor reads it)
CREATE OR REPLACE FUNCTION feed._record_job_run(p_job text, p_at timestamptz, p_result jsonb)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
    INSERT INTO feed.job_runs AS j (job, last_run_at, last_result) VALUES (p_job, p_at, p_result)
    ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at, last_result = excluded.last_result
$func$;

-------------------------------------------------------------------------------
-- refresh_trending_scores: the heartbeat. Recomputes trending_score for posts
-- created within p_window, batch by batch; each UPDATE recomputes from the
-- row's own committed counters, so a like committed meanwhile is never lost,
-- and a row locked by a like in progress is skipped (that like's reflex update
-- rescores it). A post whose score age has moved by no more than
-- heartbeat_min_change (relative) keeps its row: every rewrite is a new row
-- version with an entry in each index of feed.posts, and most of a 7-day
-- window decays by well under 1% between two runs. Posts that left the window
-- since the last run get their exact final score once. Returns the number of
-- posts whose score it wrote.
CREATE OR REPLACE FUNCTION feed.refresh_trending_scores(p_window interval DEFAULT '7 days')
RETURNS integer
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_now timestamptz := now();
    w record;
    v_batch_size integer := greatest(feed._setting_integer('heartbeat_batch_size'), 1);
    v_min_change double precision := feed._setting_number('heartbeat_min_change');
    v_ids bigint[];
    v_offset integer := 1;
    v_touched integer := 0;
    v_finalized integer := 0;
    v_count integer;
    v_last_run timestamptz;
BEGIN
    PERFORM feed._check_interval('p_window', p_window, interval '100 years');
    w := feed._trending_weights();

    -- the window, and the posts that left it since the previous run (their final score)
    SELECT j.last_run_at INTO v_last_run FROM feed.job_runs j WHERE j.job = 'heartbeat';
    SELECT array_agg(p.post_id ORDER BY p.post_id),
           count(*) FILTER (WHERE p.created_at <= v_now - p_window)
    INTO v_ids, v_finalized
    FROM feed.posts p
    WHERE p.created_at > least(coalesce(v_last_run, v_now), v_now) - p_window;

    WHILE v_offset <= coalesce(cardinality(v_ids), 0) LOOP
        -- a new row version per post, with entries in every index of
        -- feed.posts: skip the posts age has barely moved (writes rescore at
        -- once), and lock only the rows that will change (a row lock is a
        -- write of its own: locking the whole window cost about as much again)
        UPDATE feed.posts p
        SET trending_score = batch.score
        FROM (SELECT l.post_id, f.score
              FROM feed.posts l
              CROSS JOIN LATERAL (
                  SELECT feed._trending_formula(
                             l.like_count, l.comment_count, l.share_count, l.gift_amount, l.tip_amount,
                             l.created_at, v_now, w.weight_likes, w.weight_comments, w.weight_shares,
                             w.weight_gifts, w.weight_tips, w.gravity) AS score
                  OFFSET 0) f    -- computed once per post, not once per use
              WHERE l.post_id = ANY (v_ids[v_offset : v_offset + v_batch_size - 1])
                AND (l.created_at <= v_now - p_window
                     OR abs(f.score - l.trending_score) > v_min_change * abs(f.score)
                     OR (v_min_change = 0 AND f.score IS DISTINCT FROM l.trending_score))
              FOR UPDATE OF l SKIP LOCKED) AS batch
        WHERE p.post_id = batch.post_id;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_touched := v_touched + v_count;
        v_offset := v_offset + v_batch_size;
    END LOOP;

    PERFORM feed._record_job_run('heartbeat', v_now,
        jsonb_build_object('window', p_window::text, 'rescored', v_touched - v_finalized, 'finalized', v_finalized,
                           'unchanged', coalesce(cardinality(v_ids), 0) - v_touched));
    RETURN v_touched;
END
$func$;

-------------------------------------------------------------------------------
-- _refresh_creator_quality: rolling creator metrics over the posts of the
-- last creator_quality_window, smoothed toward neutral priors so a creator
-- with three views is not judged on them. quality in [0, 1]:
--   0.5 · watch_ratio + 0.3 · min(1, 5 · like_rate) + 0.2 · (1 − min(1, 20 · report_rate))
CREATE OR REPLACE FUNCTION feed._refresh_creator_quality()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_now timestamptz := now();
    v_refreshed integer;
BEGIN
    WITH per_author AS (
        SELECT p.author_id,
               count(*) AS posts,
               sum(p.view_count) AS views,
               (sum(p.watch_ratio_sum) + 0.5 * 5) / (sum(p.watch_count) + 5) AS watch_ratio,
               (sum(p.like_count) + 1.0) / (sum(p.view_count) + 20) AS like_rate,
               sum(p.report_count)::double precision / (sum(p.view_count) + 20) AS report_rate
        FROM feed.posts p
        WHERE p.created_at > v_now - feed._setting_interval('creator_quality_window')
        GROUP BY p.author_id
    )
    INSERT INTO feed.creator_quality AS q (author_id, watch_ratio, like_rate, report_rate, quality, posts, views, refreshed_at)
    SELECT a.author_id, a.watch_ratio, least(a.like_rate, 1), least(a.report_rate, 1),
           0.5 * least(a.watch_ratio, 1) + 0.3 * least(1, 5 * a.like_rate) + 0.2 * (1 - least(1, 20 * a.report_rate)),
           a.posts, a.views, v_now
    FROM per_author a
    ON CONFLICT (author_id) DO UPDATE
    SET watch_ratio = excluded.watch_ratio, like_rate = excluded.like_rate, report_rate = excluded.report_rate,
        quality = excluded.quality, posts = excluded.posts, views = excluded.views, refreshed_at = excluded.refreshed_at;
    GET DIAGNOSTICS v_refreshed = ROW_COUNT;
    -- creators with no post in the window fall back to the neutral default
    DELETE FROM feed.creator_quality q WHERE q.refreshed_at < v_now;
    RETURN v_refreshed;
END
$func$;

-------------------------------------------------------------------------------
-- run_maintenance: every periodic chore, for cron or pg_cron; returns counts
CREATE OR REPLACE FUNCTION feed.run_maintenance()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_now timestamptz := now();
    v_cooldown interval := feed._setting_interval('cooldown');
    v_limit integer := greatest(feed._setting_integer('maintenance_batch_size'), 1);
    v_result jsonb;
    v_rescored integer;
    v_impressions integer;
    v_seen integer;
    v_creators integer;
    v_sessions integer;
    v_deletable_before timestamptz;
    v_keys bigint[];
    v_gone uuid[];
    v_recommendations integer;
BEGIN
    v_rescored := feed.refresh_trending_scores(feed._setting_interval('trending_window'));

    v_creators := feed._refresh_creator_quality();

    -- sessions past their lifetime and their attribution window (their served
    -- pages go with them), once analytics has folded them into its rollups
    -- and counted every interaction that could engage them. Before the
    -- prunes below (the rollup reads none of their tables): on Citus a
    -- transaction that has deleted from a distributed table over several
    -- connections may no longer modify a reference table with foreign keys,
    -- which the sessions are while they are not distributed
    PERFORM feed._rollup_analytics();
    -- read before the delete: on Citus a function that reads tables cannot
    -- run inside a statement sent to the shards
    v_deletable_before := least(feed._analytics_deletable_before(), v_now);
    -- by key (the viewer first), as the prunes below; their pages go by the
    -- foreign key, and the analytics ledger's rows of them here (a
    -- coordinator table may not reference a distributed one on Citus). A
    -- session this old can no longer be continued, so the age checked again
    -- on the row deleted never differs from the batch's.
    SELECT array_agg(o.viewer_key), array_agg(o.session_id) INTO v_keys, v_gone
    FROM (SELECT o.viewer_key, o.session_id FROM feed.feed_sessions o
          WHERE o.expires_at < v_deletable_before
          ORDER BY o.expires_at LIMIT v_limit) o;
    DELETE FROM feed.feed_sessions s
    USING unnest(v_keys, v_gone) AS k(viewer_key, session_id)
    WHERE s.viewer_key = k.viewer_key AND s.session_id = k.session_id AND s.expires_at < v_deletable_before;
    GET DIAGNOSTICS v_sessions = ROW_COUNT;
    DELETE FROM feed.analytics_engaged_rows e WHERE e.session_id = ANY (v_gone);

    -- Each batch is found, then deleted by its key (the viewer first): Citus
    -- plans no ctid in a modification of a distributed table. The keys travel
    -- as arrays unnested beside the table, which the planner estimates at a
    -- few rows, so each one is an index probe (as the ctid lookup was), never
    -- a hash join over the whole table; the age is checked again on the row
    -- deleted, in case a sighting moved it since.
    DELETE FROM feed.impressions i
    USING (SELECT array_agg(o.user_id) AS users, array_agg(o.post_id) AS posts, array_agg(o.session_id) AS sessions
           FROM (SELECT o.user_id, o.post_id, o.session_id FROM feed.impressions o
                 WHERE o.seen_at < v_now - v_cooldown LIMIT v_limit) o) b
    CROSS JOIN LATERAL unnest(b.users, b.posts, b.sessions) AS k (user_id, post_id, session_id)
    WHERE i.user_id = k.user_id AND i.post_id = k.post_id
      AND i.session_id IS NOT DISTINCT FROM k.session_id   -- one NULL session per (viewer, post): NULLS NOT DISTINCT
      AND i.seen_at < v_now - v_cooldown;
    GET DIAGNOSTICS v_impressions = ROW_COUNT;

    DELETE FROM feed.seen_posts s
    USING (SELECT array_agg(o.user_id) AS users, array_agg(o.post_id) AS posts
           FROM (SELECT o.user_id, o.post_id FROM feed.seen_posts o
                 WHERE o.last_seen_at < v_now - v_cooldown LIMIT v_limit) o) b
    CROSS JOIN LATERAL unnest(b.users, b.posts) AS k (user_id, post_id)
    WHERE s.user_id = k.user_id AND s.post_id = k.post_id
      AND s.last_seen_at < v_now - v_cooldown;
    GET DIAGNOSTICS v_seen = ROW_COUNT;

    DELETE FROM feed.recommendations r
    USING (SELECT array_agg(o.user_id) AS users, array_agg(o.post_id) AS posts
           FROM (SELECT o.user_id, o.post_id FROM feed.recommendations o
                 WHERE o.expires_at < v_now ORDER BY o.expires_at LIMIT v_limit) o) b
    CROSS JOIN LATERAL unnest(b.users, b.posts) AS k (user_id, post_id)
    WHERE r.user_id = k.user_id AND r.post_id = k.post_id
      AND r.expires_at < v_now;
    GET DIAGNOSTICS v_recommendations = ROW_COUNT;

    v_result := jsonb_build_object(
        'trending_rescored', v_rescored,
        'impressions_pruned', v_impressions,
        'seen_pruned', v_seen,
        'creators_refreshed', v_creators,
        'sessions_expired', v_sessions,
        'recommendations_expired', v_recommendations);
    PERFORM feed._record_job_run('maintenance', v_now, v_result);
    RETURN v_result;
END
$func$;
