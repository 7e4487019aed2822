-- Experiments, feature flags and feed analytics (contract §8, docs/experiments.md).
-- One mechanism: an experiment is a set of weighted variants, each of which may
-- override the ranking profile and settings; a feature flag is an experiment
-- whose flag variant carries the overrides and whose `control` variant none,
-- weighted by the rollout percentage. Idempotent: re-applied by every migrate.

-------------------------------------------------------------------------------
-- attribution_window: how long after serving a positive interaction counts
INSERT INTO feed.settings AS s (name, value, default_value, kind, min_value, max_value, description)
SELECT d.name, d.value, d.value, d.kind, d.min_value, d.max_value, d.description FROM (VALUES
    ('attribution_window', '24 hours', 'interval', '1 minute', '30 days',
     'Experiments and feed metrics: a positive interaction with a served post counts as engagement within this time after serving it.')
) AS d (name, value, kind, min_value, max_value, description)
ON CONFLICT (name) DO UPDATE
SET default_value = excluded.default_value, kind = excluded.kind, min_value = excluded.min_value,
    max_value = excluded.max_value, description = excluded.description
WHERE (s.default_value, s.kind, s.min_value, s.max_value, s.description)
      IS DISTINCT FROM (excluded.default_value, excluded.kind, excluded.min_value, excluded.max_value, excluded.description);

-------------------------------------------------------------------------------
-- _pick_variant: the variant a user falls into. A hash of salt and user id
-- gives a uniform draw in [0, 1); the variants, in name order (collation "C",
-- so every server agrees), share [0, 1) in proportion to their weights.
-- Different salts give unrelated draws, so experiments are independent.
CREATE OR REPLACE FUNCTION feed._pick_variant(p_variants jsonb, p_salt text, p_user_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    WITH draw AS (
        -- the top 53 bits of a 64-bit hash: exactly representable, uniform in [0, 1)
        SELECT ((hashtextextended(p_salt || ':' || p_user_id::text, 0) >> 11) & 9007199254740991)::double precision
               / 9007199254740992.0 AS u
    ), cumulative AS (
        SELECT v.key,
               sum((v.value ->> 'weight')::double precision) OVER (ORDER BY v.key COLLATE "C") AS upto,
               sum((v.value ->> 'weight')::double precision) OVER () AS total
        FROM jsonb_each(p_variants) v
    )
    SELECT CASE WHEN p_user_id IS NULL THEN NULL ELSE coalesce(
        (SELECT c.key FROM cumulative c, draw d WHERE c.upto > d.u * c.total
         ORDER BY c.key COLLATE "C" LIMIT 1),
        (SELECT c.key FROM cumulative c ORDER BY c.key COLLATE "C" DESC LIMIT 1)) END
$func$;

-------------------------------------------------------------------------------
-- assign_variant: the variant of a running (or any) experiment a viewer is
-- in (contract §8): deterministic, stable while the experiment runs (its
-- variants and salt cannot change then), proportional to the weights
CREATE OR REPLACE FUNCTION feed.assign_variant(p_user_id bigint, p_experiment text)
RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_experiment feed.experiments;
BEGIN
    SELECT * INTO v_experiment FROM feed.experiments e WHERE e.name = p_experiment;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown experiment: %', coalesce(p_experiment, 'null')
            USING ERRCODE = '22023', HINT = 'SELECT name FROM feed.experiments lists them';
    END IF;
    IF p_user_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN feed._pick_variant(v_experiment.variants, coalesce(v_experiment.salt, v_experiment.name), p_user_id);
END
$func$;

-------------------------------------------------------------------------------
-- _experiment_setting_check: would feed.settings accept this value? The one
-- place settings are typed is feed.settings' own trigger, so the value is
-- tried there in a sub-transaction that is always undone (by a private
-- marker exception); the trigger's 22023 comes back naming the variant.
CREATE OR REPLACE FUNCTION feed._experiment_setting_check(p_variant text, p_name text, p_value jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_value text := p_value #>> '{}';
    v_message text;
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) NOT IN ('string', 'number', 'boolean') THEN
        RAISE EXCEPTION 'variants.%.settings.%: must be a string, number or boolean, got %', p_variant, p_name,
            coalesce(p_value::text, 'null') USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM feed.settings s WHERE s.name = p_name) THEN
        RAISE EXCEPTION 'variants.%.settings.%: unknown setting', p_variant, p_name
            USING ERRCODE = '22023', HINT = 'SELECT name FROM feed.settings lists them';
    END IF;
    BEGIN
        UPDATE feed.settings s SET value = v_value WHERE s.name = p_name;
        RAISE EXCEPTION 'undo' USING ERRCODE = 'PFX01';
    EXCEPTION
        WHEN SQLSTATE 'PFX01' THEN
            NULL;   -- accepted, and undone
        WHEN invalid_parameter_value OR data_exception OR check_violation OR not_null_violation THEN
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT;
            RAISE EXCEPTION 'variants.%.settings.%: %', p_variant, p_name, v_message USING ERRCODE = '22023';
    END;
END
$func$;

-------------------------------------------------------------------------------
-- _experiment_overrides: what an experiment's variants override, for the
-- overlap rule: whether any variant sets a profile, and every setting any
-- variant overrides
CREATE OR REPLACE FUNCTION feed._experiment_overrides(p_variants jsonb, OUT sets_profile boolean, OUT settings text[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce(bool_or(v.value ? 'profile'), false),
           coalesce((SELECT array_agg(DISTINCT k.key ORDER BY k.key)
                     FROM jsonb_each(p_variants) w,
                          jsonb_object_keys(CASE WHEN jsonb_typeof(w.value -> 'settings') = 'object'
                                                 THEN w.value -> 'settings' ELSE '{}' END) AS k(key)), '{}')
    FROM jsonb_each(p_variants) v
$func$;

-------------------------------------------------------------------------------
-- _experiments_check: feed.experiments guards itself (operators manage it with
-- plain SQL): variants well formed, settings valid, no overlap with another
-- running experiment, assignments stable while running, start/stop times kept
CREATE OR REPLACE FUNCTION feed._experiments_check()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_variant record;
    v_key text;
    v_setting record;
    v_mine record;
    v_other record;
    v_starting boolean;
BEGIN
    -- well-formed variants
    IF NEW.variants IS NULL OR jsonb_typeof(NEW.variants) <> 'object' OR NEW.variants = '{}' THEN
        RAISE EXCEPTION 'experiment %: variants must be an object of at least one variant, got %', NEW.name,
            coalesce(NEW.variants::text, 'null') USING ERRCODE = '22023',
            HINT = '{"control": {"weight": 50}, "treatment": {"weight": 50, "profile": "hybrid"}}';
    END IF;
    FOR v_variant IN SELECT e.key, e.value FROM jsonb_each(NEW.variants) e LOOP
        IF btrim(v_variant.key) = '' THEN
            RAISE EXCEPTION 'experiment %: a variant name must not be empty', NEW.name USING ERRCODE = '22023';
        END IF;
        IF jsonb_typeof(v_variant.value) <> 'object' THEN
            RAISE EXCEPTION 'variants.%: must be an object {"weight": n, "profile": ..., "settings": {...}}',
                v_variant.key USING ERRCODE = '22023';
        END IF;
        FOR v_key IN SELECT jsonb_object_keys(v_variant.value) LOOP
            IF v_key NOT IN ('weight', 'profile', 'settings') THEN
                RAISE EXCEPTION 'variants.%.%: unknown key (weight, profile and settings are known)',
                    v_variant.key, v_key USING ERRCODE = '22023';
            END IF;
        END LOOP;
        IF jsonb_typeof(v_variant.value -> 'weight') IS DISTINCT FROM 'number'
           OR (v_variant.value ->> 'weight')::double precision <= 0 THEN
            RAISE EXCEPTION 'variants.%.weight: must be a positive number, got %', v_variant.key,
                coalesce(v_variant.value ->> 'weight', 'null') USING ERRCODE = '22023';
        END IF;
        IF v_variant.value ? 'profile' AND (
               jsonb_typeof(v_variant.value -> 'profile') <> 'string'
               OR NOT EXISTS (SELECT 1 FROM feed.ranking_profiles r WHERE r.name = v_variant.value ->> 'profile')) THEN
            RAISE EXCEPTION 'variants.%.profile: unknown profile %', v_variant.key, v_variant.value -> 'profile'
                USING ERRCODE = '22023', HINT = 'SELECT name FROM feed.ranking_profiles lists them';
        END IF;
        IF v_variant.value ? 'settings' THEN
            IF jsonb_typeof(v_variant.value -> 'settings') <> 'object' THEN
                RAISE EXCEPTION 'variants.%.settings: must be an object {setting: value}', v_variant.key
                    USING ERRCODE = '22023';
            END IF;
            FOR v_setting IN SELECT s.key, s.value FROM jsonb_each(v_variant.value -> 'settings') s LOOP
                PERFORM feed._experiment_setting_check(v_variant.key, v_setting.key, v_setting.value);
            END LOOP;
        END IF;
    END LOOP;

    -- assignments stay stable while an experiment runs
    IF TG_OP = 'UPDATE' AND OLD.status = 'running' AND NEW.status = 'running'
       AND (NEW.variants IS DISTINCT FROM OLD.variants OR NEW.salt IS DISTINCT FROM OLD.salt
            OR NEW.name IS DISTINCT FROM OLD.name) THEN
        RAISE EXCEPTION 'experiment %: variants, salt and name cannot change while it runs', OLD.name
            USING ERRCODE = '22023', HINT = 'stop it first (status = ''stopped''), or start a new experiment';
    END IF;

    -- starting: no overlap with another running experiment
    v_starting := NEW.status = 'running' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'running');
    IF v_starting THEN
        -- one start at a time, so two overlapping starts cannot both pass
        PERFORM pg_advisory_xact_lock(hashtextextended('pgfeed.experiments.start', 0));
        v_mine := feed._experiment_overrides(NEW.variants);
        FOR v_other IN
            SELECT e.name, o.sets_profile, o.settings
            FROM feed.experiments e, feed._experiment_overrides(e.variants) o
            WHERE e.status = 'running' AND e.name <> NEW.name
              AND (TG_OP = 'INSERT' OR e.name <> OLD.name)
            ORDER BY e.name
        LOOP
            IF v_mine.sets_profile AND v_other.sets_profile THEN
                RAISE EXCEPTION 'experiment % overlaps the running experiment %: both set a profile',
                    NEW.name, v_other.name USING ERRCODE = '22023', HINT = 'stop one of them first';
            END IF;
            IF v_mine.settings && v_other.settings THEN
                RAISE EXCEPTION 'experiment % overlaps the running experiment %: both override %', NEW.name,
                    v_other.name, array_to_string(ARRAY(SELECT unnest(v_mine.settings)
                                                        INTERSECT SELECT unnest(v_other.settings) ORDER BY 1), ', ')
                    USING ERRCODE = '22023', HINT = 'stop one of them first';
            END IF;
        END LOOP;
        NEW.started_at := now();
        NEW.stopped_at := NULL;
    ELSIF NEW.status = 'stopped' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'stopped') THEN
        NEW.stopped_at := now();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$func$;

CREATE OR REPLACE TRIGGER experiments_check
    BEFORE INSERT OR UPDATE ON feed.experiments
    FOR EACH ROW EXECUTE FUNCTION feed._experiments_check();

-------------------------------------------------------------------------------
-- _session_experiments: what a new feed session of this viewer runs under
-- (called by get_personalized_feed when a session starts, with the caller's
-- p_context): {"experiments": {name: variant}, "profile": text or null,
-- "settings": {name: value}}. When p_context names a profile, experiments
-- whose variants set a profile do not apply (and are not recorded), so their
-- results only count sessions that got the variant's treatment. Anonymous
-- viewers are in no experiment.
CREATE OR REPLACE FUNCTION feed._session_experiments(p_user_id bigint, p_context jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    WITH applied AS (
        SELECT e.name, a.variant, e.variants -> a.variant AS spec
        FROM feed.experiments e
        CROSS JOIN LATERAL (SELECT feed._pick_variant(e.variants, coalesce(e.salt, e.name), p_user_id) AS variant) a
        WHERE e.status = 'running' AND p_user_id IS NOT NULL
          AND NOT (p_context ->> 'profile' IS NOT NULL
                   AND (SELECT o.sets_profile FROM feed._experiment_overrides(e.variants) o))
    )
    SELECT jsonb_build_object(
        'experiments', coalesce((SELECT jsonb_object_agg(a.name, a.variant) FROM applied a), '{}'),
        'profile', (SELECT a.spec -> 'profile' FROM applied a WHERE a.spec ? 'profile' ORDER BY a.name LIMIT 1),
        'settings', coalesce((SELECT jsonb_object_agg(s.key, s.value ORDER BY a.name, s.key)
                              FROM applied a, jsonb_each(coalesce(a.spec -> 'settings', '{}')) s), '{}'))
$func$;

-------------------------------------------------------------------------------
-- _variant_settings: the merged setting overrides of a recorded assignment
-- (feed_sessions.experiments), for the pages after the first of a session
CREATE OR REPLACE FUNCTION feed._variant_settings(p_experiments jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce(jsonb_object_agg(s.key, s.value ORDER BY a.key, s.key), '{}')
    FROM jsonb_each_text(coalesce(p_experiments, '{}')) a
    JOIN feed.experiments e ON e.name = a.key
    CROSS JOIN LATERAL jsonb_each(coalesce(e.variants -> a.value -> 'settings', '{}')) s
$func$;

-------------------------------------------------------------------------------
-- _experiment_reasons: what every served row's reasons say about the
-- session's experiments (contract §8): {"experiment": name, "variant": v}
-- for one, {"experiments": {name: variant}} for several, {} for none
CREATE OR REPLACE FUNCTION feed._experiment_reasons(p_experiments jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE
        WHEN p_experiments IS NULL OR p_experiments = '{}' THEN '{}'::jsonb
        WHEN (SELECT count(*) FROM jsonb_object_keys(p_experiments)) = 1 THEN
            (SELECT jsonb_build_object('experiment', e.key, 'variant', e.value)
             FROM jsonb_each(p_experiments) e)
        ELSE jsonb_build_object('experiments', p_experiments) END
$func$;

-------------------------------------------------------------------------------
-- _setting_override: the value a running variant gives a setting inside the
-- current feed call, or NULL. get_personalized_feed sets the transaction-local
-- pgfeed.setting_overrides (jsonb text) with set_config(..., true) under a
-- function-level SET, so the overrides end with the call.
-- A SQL-standard body (names bound at creation, no SET clause), so that it
-- inlines into _setting, which every setting read goes through.
CREATE OR REPLACE FUNCTION feed._setting_override(p_name text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN nullif(current_setting('pgfeed.setting_overrides', true), '')::jsonb ->> p_name;

-------------------------------------------------------------------------------
-- _wilson: the 95% Wilson score interval of a proportion (successes of n)
CREATE OR REPLACE FUNCTION feed._wilson(p_successes bigint, p_n bigint, OUT low double precision,
                                        OUT high double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE WHEN p_n > 0 THEN greatest(0, c.center - c.half) END,
           CASE WHEN p_n > 0 THEN least(1, c.center + c.half) END
    FROM (SELECT (p.p + z.z2 / (2 * p.n)) / (1 + z.z2 / p.n) AS center,
                 sqrt(z.z2) * sqrt(p.p * (1 - p.p) / p.n + z.z2 / (4 * p.n * p.n)) / (1 + z.z2 / p.n) AS half
          FROM (SELECT 1.959963984540054::double precision ^ 2 AS z2) z,
               (SELECT p_successes::double precision / nullif(p_n, 0) AS p,
                       nullif(p_n, 0)::double precision AS n) p) c
$func$;

-------------------------------------------------------------------------------
-- _rollup_watermark: sessions that expired before it are in the rollups (a
-- missing state row, e.g. after a TRUNCATE, means nothing is)
CREATE OR REPLACE FUNCTION feed._rollup_watermark()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce((SELECT r.rolled_up_before FROM feed.analytics_rollup_state r), '-infinity')
$func$;

-------------------------------------------------------------------------------
-- _engaged_through: positive interactions written before it are counted in
-- the rollups' engagements ('-infinity' without a state row)
CREATE OR REPLACE FUNCTION feed._engaged_through()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce((SELECT r.engaged_through FROM feed.analytics_rollup_state r), '-infinity')
$func$;

-------------------------------------------------------------------------------
-- _analytics_deletable_before: sessions that expired before it are rolled up
-- and past their attribution window, every interaction that could engage
-- them counted: run_maintenance may delete them
CREATE OR REPLACE FUNCTION feed._analytics_deletable_before()
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT least(feed._rollup_watermark(), feed._engaged_through() - feed._setting_interval('attribution_window'))
$func$;

-------------------------------------------------------------------------------
-- _served: served rows not yet rolled up (sessions that expired on or after
-- the rollup watermark, and before p_expires_before), served at or after
-- p_from, each with whether the same viewer engaged with the post within
-- attribution_window of serving it; only sessions that recorded
-- p_experiment, when it is given.
-- Set-based, so its cost follows the tail, not the log: sessions by
-- feed_sessions_expires_idx, their rows by the primary key, and each viewer's
-- positive interactions in [first row served, last row served + window] by
-- ONE range scan of interactions_user_recent_idx per viewer (not one probe
-- per served row), matched to the rows by a hash join on (viewer, post).
-- On a Citus cluster (sessions, their rows and the log distributed by
-- viewer) the tail is one colocated read of sessions with their rows, the
-- engagement one read of the log joined with the tail on the viewer; the
-- watermark and settings are read first (a function reading a table may not
-- run on a shard), and the per-viewer subquery is kept apart from the join by
-- a GROUP BY on its columns, which Citus accepts where it refuses an OFFSET.
DROP FUNCTION IF EXISTS feed._served(timestamptz, text);
CREATE OR REPLACE FUNCTION feed._served(p_from timestamptz, p_experiment text DEFAULT NULL,
                                        p_expires_before timestamptz DEFAULT 'infinity')
RETURNS TABLE (session_id uuid, user_id bigint, experiments jsonb, page_no integer, post_id bigint,
               author_id bigint, source text, is_repeat boolean, served_at timestamptz, engaged boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
#variable_conflict use_column
DECLARE
    v_watermark timestamptz := feed._rollup_watermark();
    v_window interval := feed._setting_interval('attribution_window');
    v_positive text[] := feed._positive_actions();
BEGIN
    RETURN QUERY
    WITH tail AS MATERIALIZED (
        SELECT s.session_id, s.user_id, s.experiments, i.page_no, i.post_id, i.author_id, i.source, i.is_repeat,
               i.served_at
        FROM feed.feed_sessions s
        -- OFFSET 0 keeps each lateral a per-session (per-viewer) index range
        -- scan: flattened, the planner hash-joins the whole table instead
        -- (Citus accepts this OFFSET: the lateral names the sessions table
        -- itself, on its distribution column, not a CTE)
        CROSS JOIN LATERAL (
            SELECT i.page_no, i.post_id, i.author_id, i.source, i.is_repeat, i.served_at
            FROM feed.feed_session_items i
            WHERE i.viewer_key = s.viewer_key AND i.session_id = s.session_id AND i.served_at >= p_from
            OFFSET 0) i
        WHERE s.expires_at >= v_watermark AND s.expires_at < p_expires_before
          AND (p_experiment IS NULL OR s.experiments ? p_experiment)
    ), viewers AS MATERIALIZED (
        -- (on a cluster, the viewers are what goes to the shards, not the tail)
        SELECT t.user_id, min(t.served_at) AS first_served, max(t.served_at) AS last_served
        FROM tail t WHERE t.user_id IS NOT NULL GROUP BY 1
    ), positives AS MATERIALIZED (
        -- read apart from the tail's rows, so each viewer's range is scanned
        -- once (joined with the rows first, it was scanned once per row)
        SELECT x.user_id, x.post_id, x.created_at
        FROM viewers v
        -- the GROUP BY keeps each lateral a per-viewer index range scan (as
        -- OFFSET 0 would, which Citus refuses over a CTE); the pairs are
        -- DISTINCT below anyway
        CROSS JOIN LATERAL (
            SELECT x.user_id, x.post_id, x.created_at FROM feed.interactions x
            WHERE x.user_id = v.user_id
              AND x.created_at >= v.first_served AND x.created_at <= v.last_served + v_window
              AND x.action = ANY (v_positive)
            GROUP BY x.user_id, x.post_id, x.created_at) x
    ), engaged AS MATERIALIZED (
        SELECT DISTINCT t.session_id, t.post_id
        FROM positives x
        JOIN tail t ON t.user_id = x.user_id AND t.post_id = x.post_id
                   AND x.created_at >= t.served_at AND x.created_at <= t.served_at + v_window
    )
    SELECT t.session_id, t.user_id, t.experiments, t.page_no, t.post_id, t.author_id, t.source, t.is_repeat,
           t.served_at, e.session_id IS NOT NULL
    FROM tail t
    LEFT JOIN engaged e ON e.session_id = t.session_id AND e.post_id = t.post_id;
END
$func$;

-------------------------------------------------------------------------------
-- _late_engaged: served rows of rolled-up sessions (expired before the
-- rollup watermark) not yet counted as engaged, that the same viewer engaged
-- with by a positive interaction written in [p_since, p_until) and within
-- attribution_window of serving it; served at or after p_from, of sessions
-- that recorded p_experiment when it is given. The rollups' engagements plus
-- these are every engaged rolled-up row.
-- Its cost follows the interactions since p_since: the sessions that may
-- still be engaged (expired less than a window before p_since) by
-- feed_sessions_expires_idx, each of their viewers' interactions since
-- p_since by one range scan of interactions_user_recent_idx, and the rows
-- they name by the (viewer_key, session_id, post_id) key.
-- On a Citus cluster the reads of sessions, the log and the rows are joined
-- on the viewer (a viewer's session is keyed by the viewer), the watermark
-- and settings are read first, and the ledger of rows already counted (a
-- coordinator table) is consulted after the distributed part.
CREATE OR REPLACE FUNCTION feed._late_engaged(p_from timestamptz, p_experiment text DEFAULT NULL,
                                              p_since timestamptz DEFAULT NULL,
                                              p_until timestamptz DEFAULT 'infinity')
RETURNS TABLE (session_id uuid, user_id bigint, experiments jsonb, post_id bigint, source text,
               served_at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
#variable_conflict use_column
DECLARE
    v_watermark timestamptz := feed._rollup_watermark();
    v_window interval := feed._setting_interval('attribution_window');
    v_since timestamptz := coalesce(p_since, feed._engaged_through());
    v_positive text[] := feed._positive_actions();
BEGIN
    RETURN QUERY
    WITH open_ AS MATERIALIZED (
        SELECT s.viewer_key, s.session_id, s.user_id, s.experiments
        FROM feed.feed_sessions s
        WHERE s.expires_at < v_watermark AND s.expires_at >= v_since - v_window
          AND s.user_id IS NOT NULL
          AND (p_experiment IS NULL OR s.experiments ? p_experiment)
    ), x AS (
        SELECT DISTINCT v.user_id, x.post_id, x.created_at
        FROM (SELECT DISTINCT o.user_id FROM open_ o) v
        -- the GROUP BY keeps each lateral a per-viewer index range scan (as
        -- OFFSET 0 would, which Citus refuses over a CTE)
        CROSS JOIN LATERAL (
            SELECT x.user_id, x.post_id, x.created_at FROM feed.interactions x
            WHERE x.user_id = v.user_id AND x.created_at >= v_since AND x.created_at < p_until
              AND x.action = ANY (v_positive)
            GROUP BY x.user_id, x.post_id, x.created_at) x
    ), late AS MATERIALIZED (
        SELECT DISTINCT o.session_id, o.user_id, o.experiments, i.post_id, i.source, i.served_at
        FROM x
        JOIN open_ o ON o.user_id = x.user_id
        -- one row by the (viewer_key, session_id, post_id) key, probed per
        -- (session, post); the GROUP BY (of a unique key: no rows merge)
        -- keeps it a probe, as OFFSET 0 would. A viewer's sessions are keyed
        -- by the viewer, so the rows are joined with the log on it too (on a
        -- cluster, both on their distribution column)
        CROSS JOIN LATERAL (
            SELECT i.post_id, i.source, i.served_at FROM feed.feed_session_items i
            WHERE i.viewer_key = o.viewer_key AND i.viewer_key = x.user_id
              AND i.session_id = o.session_id AND i.post_id = x.post_id
              AND i.served_at >= p_from
              AND x.created_at >= i.served_at AND x.created_at <= i.served_at + v_window
            GROUP BY i.viewer_key, i.session_id, i.post_id, i.source, i.served_at) i
    )
    SELECT l.session_id, l.user_id, l.experiments, l.post_id, l.source, l.served_at
    FROM late l
    WHERE NOT EXISTS (SELECT 1 FROM feed.analytics_engaged_rows e
                      WHERE e.session_id = l.session_id AND e.post_id = l.post_id);
END
$func$;

-------------------------------------------------------------------------------
-- experiment_results: per variant, viewers, impressions (rows served to the
-- variant's viewers), engagements (served rows the viewer engaged with within
-- attribution_window), the rate and its 95% Wilson interval (contract §8).
-- Every variant is listed, with zeros before anyone saw it.
CREATE OR REPLACE FUNCTION feed.experiment_results(p_experiment text)
RETURNS TABLE (variant text, viewers bigint, impressions bigint, engagements bigint,
               engagement_rate double precision, ci_low double precision, ci_high double precision)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- custom plans always (here and in what it calls): after five calls on one
-- connection PL/pgSQL would switch to a generic plan, which at 10M interactions
-- took 25 s instead of 1 s (docs/experiments.md, "Cost, measured")
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_variants jsonb;
BEGIN
    SELECT e.variants INTO v_variants FROM feed.experiments e WHERE e.name = p_experiment;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown experiment: %', coalesce(p_experiment, 'null')
            USING ERRCODE = '22023', HINT = 'SELECT name FROM feed.experiments lists them';
    END IF;
    RETURN QUERY
    WITH tail AS (
        SELECT r.experiments ->> p_experiment AS variant, r.user_id, count(*) AS impressions,
               count(*) FILTER (WHERE r.engaged) AS engagements
        FROM feed._served('-infinity', p_experiment) r
        WHERE r.user_id IS NOT NULL
        GROUP BY 1, 2
    ), per_variant AS (
        -- the rolled-up totals, plus the tail; a tail viewer is a new viewer
        -- unless the rollup already counted them in that variant
        SELECT u.variant, sum(u.viewers)::bigint AS viewers, sum(u.impressions)::bigint AS impressions,
               sum(u.engagements)::bigint AS engagements
        FROM (SELECT t.variant,
                     count(*) FILTER (WHERE NOT EXISTS (
                         SELECT 1 FROM feed.analytics_experiment_viewers a
                         WHERE a.experiment = p_experiment AND a.variant = t.variant AND a.user_id = t.user_id))
                         AS viewers,
                     sum(t.impressions) AS impressions, sum(t.engagements) AS engagements
              FROM tail t GROUP BY 1
              UNION ALL
              SELECT l.experiments ->> p_experiment, 0, 0, count(*)
              FROM feed._late_engaged('-infinity', p_experiment) l
              GROUP BY 1
              UNION ALL
              SELECT a.variant, a.viewers, a.impressions, a.engagements
              FROM feed.analytics_experiment_variants a
              WHERE a.experiment = p_experiment) u
        GROUP BY 1
    )
    SELECT k.variant, coalesce(v.viewers, 0), coalesce(v.impressions, 0), coalesce(v.engagements, 0),
           v.engagements::double precision / nullif(v.impressions, 0), w.low, w.high
    FROM (SELECT jsonb_object_keys(v_variants) AS variant
          UNION SELECT p.variant FROM per_variant p) k
    LEFT JOIN per_variant v ON v.variant = k.variant
    CROSS JOIN LATERAL feed._wilson(coalesce(v.engagements, 0), coalesce(v.impressions, 0)) w
    ORDER BY k.variant COLLATE "C";
END
$func$;

-------------------------------------------------------------------------------
-- _metrics_from: the first UTC day feed_metrics and the report cover
CREATE OR REPLACE FUNCTION feed._metrics_from(p_since interval)
RETURNS date
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_since IS NULL OR p_since < interval '0' THEN
        PERFORM feed._bad_argument('p_since', format('must be a non-negative interval, got %s',
                                   coalesce(p_since::text, 'null')));
    END IF;
    RETURN ((now() - p_since) AT TIME ZONE 'UTC')::date;
END
$func$;

-------------------------------------------------------------------------------
-- feed_metrics: per UTC day (whole days, from the day now() - p_since falls
-- in) and source: impressions, engagements, rate, the share of controlled
-- repeats, distinct posts and authors (contract §8)
CREATE OR REPLACE FUNCTION feed.feed_metrics(p_since interval DEFAULT '7 days')
RETURNS TABLE (day date, source text, impressions bigint, engagements bigint,
               engagement_rate double precision, repeat_share double precision,
               distinct_posts bigint, distinct_authors bigint)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- custom plans always (here and in what it calls): after five calls on one
-- connection PL/pgSQL would switch to a generic plan, which at 10M interactions
-- took 25 s instead of 1 s (docs/experiments.md, "Cost, measured")
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_from date := feed._metrics_from(p_since);
BEGIN
    RETURN QUERY
    WITH tail AS (
        SELECT (r.served_at AT TIME ZONE 'UTC')::date AS day, r.source, r.post_id, max(r.author_id) AS author_id,
               count(*) AS impressions, count(*) FILTER (WHERE r.is_repeat) AS repeats,
               count(*) FILTER (WHERE r.engaged) AS engagements
        FROM feed._served(v_from::timestamp AT TIME ZONE 'UTC') r
        GROUP BY 1, 2, 3
    ), per_source AS (
        -- the rolled-up totals, plus the tail; a tail post (author) is a new
        -- one unless the rollup already holds it for that day and source.
        -- Only a day and source with a rolled-up total are looked up (most of
        -- the tail is not), and an author only for a post that is new (a
        -- rolled-up post's author is rolled up too).
        SELECT t.day, t.source, sum(t.impressions) AS impressions, sum(t.repeats) AS repeats,
               sum(t.engagements) AS engagements, count(*) FILTER (WHERE n.new_post) AS posts,
               count(DISTINCT t.author_id) FILTER (WHERE n.new_post AND (NOT n.rolled OR NOT EXISTS (
                   SELECT 1 FROM feed.analytics_daily_posts a
                   WHERE a.day = t.day AND a.source = t.source AND a.author_id = t.author_id))) AS authors
        FROM tail t
        LEFT JOIN feed.analytics_daily_sources s ON s.day = t.day AND s.source = t.source
        CROSS JOIN LATERAL (
            SELECT s.day IS NOT NULL AS rolled, s.day IS NULL OR NOT EXISTS (
                       SELECT 1 FROM feed.analytics_daily_posts a
                       WHERE a.day = t.day AND a.source = t.source AND a.post_id = t.post_id) AS new_post
            OFFSET 0) n
        GROUP BY 1, 2
        UNION ALL
        SELECT (l.served_at AT TIME ZONE 'UTC')::date, l.source, 0, 0, count(*), 0, 0
        FROM feed._late_engaged(v_from::timestamp AT TIME ZONE 'UTC') l
        GROUP BY 1, 2
        UNION ALL
        SELECT a.day, a.source, a.impressions, a.repeats, a.engagements, a.distinct_posts, a.distinct_authors
        FROM feed.analytics_daily_sources a
        WHERE a.day >= v_from
    )
    SELECT p.day, p.source, sum(p.impressions)::bigint, sum(p.engagements)::bigint,
           sum(p.engagements)::double precision / nullif(sum(p.impressions), 0),
           sum(p.repeats)::double precision / nullif(sum(p.impressions), 0),
           sum(p.posts)::bigint, sum(p.authors)::bigint
    FROM per_source p
    GROUP BY 1, 2
    ORDER BY 1, 2;
END
$func$;

-------------------------------------------------------------------------------
-- _page_metrics: per UTC day, pages served, mean rows per page, mean share
-- of controlled repeats per page and mean distinct authors per page (the
-- report; a page counts on the day its first row was served)
CREATE OR REPLACE FUNCTION feed._page_metrics(p_since interval DEFAULT '7 days')
RETURNS TABLE (day date, pages bigint, mean_items double precision, mean_repeat_share double precision,
               mean_distinct_authors double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- custom plans always (here and in what it calls): after five calls on one
-- connection PL/pgSQL would switch to a generic plan, which at 10M interactions
-- took 25 s instead of 1 s (docs/experiments.md, "Cost, measured")
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_from date := feed._metrics_from(p_since);
BEGIN
    RETURN QUERY
    WITH pages AS (
        SELECT (min(r.served_at) AT TIME ZONE 'UTC')::date AS day, count(*) AS items,
               count(*) FILTER (WHERE r.is_repeat)::double precision / count(*) AS repeat_share,
               count(DISTINCT r.author_id) AS authors
        FROM feed._served(v_from::timestamp AT TIME ZONE 'UTC') r
        GROUP BY r.session_id, r.page_no
    ), per_day AS (
        SELECT p.day, count(*) AS pages, sum(p.items) AS items, sum(p.repeat_share) AS repeat_share_sum,
               sum(p.authors) AS authors_sum
        FROM pages p GROUP BY 1
        UNION ALL
        SELECT a.day, a.pages, a.items, a.repeat_share_sum, a.distinct_authors_sum
        FROM feed.analytics_daily_pages a WHERE a.day >= v_from
    )
    SELECT d.day, sum(d.pages)::bigint, sum(d.items)::double precision / sum(d.pages),
           sum(d.repeat_share_sum) / sum(d.pages), sum(d.authors_sum)::double precision / sum(d.pages)
    FROM per_day d
    GROUP BY 1
    ORDER BY 1;
END
$func$;

-------------------------------------------------------------------------------
-- _rollup_analytics: fold the served rows of sessions that expired more
-- than one session_lifetime ago (no feed call can still be continuing them)
-- into the rollups, with the engagement they have, and move the watermark
-- past them; first count the rows of earlier folded sessions that positive
-- interactions written since engaged_through engaged (each row once:
-- analytics_engaged_rows), and move engaged_through to p_now.
-- run_maintenance calls it before deleting sessions, and deletes only
-- sessions _analytics_deletable_before (folded, and their attribution window
-- closed before engaged_through), so results and metrics survive expiry.
-- Returns the counts.
-- p_now: the present (tests replay a timeline with it; run_maintenance passes none).
DROP FUNCTION IF EXISTS feed._rollup_analytics();
CREATE OR REPLACE FUNCTION feed._rollup_analytics(p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
-- custom plans always (here and in what it calls): after five calls on one
-- connection PL/pgSQL would switch to a generic plan, which at 10M interactions
-- took 25 s instead of 1 s (docs/experiments.md, "Cost, measured")
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_state feed.analytics_rollup_state;
    v_cutoff timestamptz := p_now - feed._setting_interval('session_lifetime');
    v_sessions bigint := 0;
    v_rows bigint := 0;
    v_late bigint := 0;
    v_experiments text[];
    v_posts feed.analytics_daily_posts[];
    v_sources feed.analytics_daily_sources[];
    v_pages feed.analytics_daily_pages[];
    v_viewers feed.analytics_experiment_viewers[];
    v_variants feed.analytics_experiment_variants[];
    v_flags feed.analytics_engaged_rows[];
BEGIN
    -- one rollup at a time (the state row comes back if it was truncated away)
    INSERT INTO feed.analytics_rollup_state AS r (singleton) VALUES (true) ON CONFLICT (singleton) DO NOTHING;
    SELECT * INTO v_state FROM feed.analytics_rollup_state r FOR UPDATE;

    -- late engagement of rows already folded (before this rollup's fold, so
    -- it never sees the rows folded below, whose engagement is counted whole)
    IF p_now > v_state.engaged_through THEN
        WITH late AS MATERIALIZED (
            SELECT l.*, (l.served_at AT TIME ZONE 'UTC')::date AS day
            FROM feed._late_engaged('-infinity', NULL, v_state.engaged_through, p_now) l
        ), flags AS (
            INSERT INTO feed.analytics_engaged_rows (session_id, post_id)
            SELECT l.session_id, l.post_id FROM late l
        ), posts AS (
            UPDATE feed.analytics_daily_posts a SET engagements = a.engagements + l.n
            FROM (SELECT l.day, l.source, l.post_id, count(*) AS n FROM late l GROUP BY 1, 2, 3) l
            WHERE a.day = l.day AND a.source = l.source AND a.post_id = l.post_id
        ), sources AS (
            UPDATE feed.analytics_daily_sources a SET engagements = a.engagements + l.n
            FROM (SELECT l.day, l.source, count(*) AS n FROM late l GROUP BY 1, 2) l
            WHERE a.day = l.day AND a.source = l.source
        ), per_viewer AS MATERIALIZED (
            SELECT x.key AS experiment, x.value AS variant, l.user_id, count(*) AS n
            FROM late l
            CROSS JOIN LATERAL jsonb_each_text(l.experiments) x
            GROUP BY 1, 2, 3
        ), viewers AS (
            UPDATE feed.analytics_experiment_viewers a SET engagements = a.engagements + v.n
            FROM per_viewer v
            WHERE a.experiment = v.experiment AND a.variant = v.variant AND a.user_id = v.user_id
        ), variants AS (
            UPDATE feed.analytics_experiment_variants a SET engagements = a.engagements + v.n
            FROM (SELECT v.experiment, v.variant, sum(v.n) AS n FROM per_viewer v GROUP BY 1, 2) v
            WHERE a.experiment = v.experiment AND a.variant = v.variant
        )
        SELECT count(*) INTO v_late FROM late;
        UPDATE feed.analytics_rollup_state r SET engaged_through = p_now, updated_at = p_now;
    END IF;

    IF v_cutoff <= v_state.rolled_up_before THEN
        RETURN jsonb_build_object('sessions_rolled_up', 0, 'rows_rolled_up', 0, 'late_engagements', v_late,
                                  'rolled_up_before', v_state.rolled_up_before);
    END IF;

    -- the experiments, read by a statement of their own (on a Citus cluster
    -- a reference table beside feed._served's distributed reads could send
    -- the statement to a worker)
    v_experiments := ARRAY(SELECT e.name FROM feed.experiments e);
    -- the rows to fold are read once, by one statement that writes nothing:
    -- the totals per post, day and source, page and viewer, each post, author
    -- and viewer counted as new to its day and source (variant) total unless
    -- the rollups already hold it (read before any rollup is written, as a
    -- statement sees them before it: on a Citus cluster the writes of one
    -- statement run one after another and a later one would see an earlier
    -- one's rows), into arrays of the rollups' own row types (no temporary
    -- table, which a caller could have prepared with a trigger of its own);
    -- then each rollup is written from its array.
    WITH rows_ AS MATERIALIZED (
        SELECT r.* FROM feed._served('-infinity', NULL, v_cutoff) r
    ), daily AS MATERIALIZED (
        SELECT (t.served_at AT TIME ZONE 'UTC')::date AS day, t.source, t.post_id, max(t.author_id) AS author_id,
               count(*) AS impressions, count(*) FILTER (WHERE t.is_repeat) AS repeats,
               count(*) FILTER (WHERE t.engaged) AS engagements
        FROM rows_ t GROUP BY 1, 2, 3
    ), per_viewer AS MATERIALIZED (
        SELECT x.key AS experiment, x.value AS variant, t.user_id, count(*) AS impressions,
               count(*) FILTER (WHERE t.engaged) AS engagements
        FROM rows_ t
        CROSS JOIN LATERAL jsonb_each_text(t.experiments) x
        WHERE t.user_id IS NOT NULL AND x.key = ANY (v_experiments)
        GROUP BY 1, 2, 3
    )
    SELECT (SELECT coalesce(array_agg(ROW(d.day, d.source, d.post_id, d.author_id, d.impressions, d.repeats,
                                          d.engagements)::feed.analytics_daily_posts), '{}')
            FROM daily d),
           (SELECT coalesce(array_agg(ROW(s.day, s.source, s.impressions, s.repeats, s.engagements, s.distinct_posts,
                                          s.distinct_authors)::feed.analytics_daily_sources), '{}')
            FROM (SELECT d.day, d.source, sum(d.impressions) AS impressions, sum(d.repeats) AS repeats,
                         sum(d.engagements) AS engagements,
                         count(*) FILTER (WHERE NOT EXISTS (
                             SELECT 1 FROM feed.analytics_daily_posts o
                             WHERE o.day = d.day AND o.source = d.source AND o.post_id = d.post_id)) AS distinct_posts,
                         count(DISTINCT d.author_id) FILTER (WHERE NOT EXISTS (
                             SELECT 1 FROM feed.analytics_daily_posts o
                             WHERE o.day = d.day AND o.source = d.source AND o.author_id = d.author_id))
                             AS distinct_authors
                  FROM daily d GROUP BY 1, 2) s),
           (SELECT coalesce(array_agg(ROW(p.day, p.pages, p.items, p.repeat_share_sum,
                                          p.distinct_authors_sum)::feed.analytics_daily_pages), '{}')
            FROM (SELECT p.day, count(*) AS pages, sum(p.items) AS items, sum(p.repeat_share) AS repeat_share_sum,
                         sum(p.authors) AS distinct_authors_sum
                  FROM (SELECT (min(t.served_at) AT TIME ZONE 'UTC')::date AS day, count(*) AS items,
                               count(*) FILTER (WHERE t.is_repeat)::double precision / count(*) AS repeat_share,
                               count(DISTINCT t.author_id) AS authors
                        FROM rows_ t GROUP BY t.session_id, t.page_no) p
                  GROUP BY 1) p),
           (SELECT coalesce(array_agg(ROW(v.experiment, v.variant, v.user_id, v.impressions,
                                          v.engagements)::feed.analytics_experiment_viewers), '{}')
            FROM per_viewer v),
           (SELECT coalesce(array_agg(ROW(v.experiment, v.variant, v.viewers, v.impressions,
                                          v.engagements)::feed.analytics_experiment_variants), '{}')
            FROM (SELECT v.experiment, v.variant,
                         count(*) FILTER (WHERE NOT EXISTS (
                             SELECT 1 FROM feed.analytics_experiment_viewers o
                             WHERE o.experiment = v.experiment AND o.variant = v.variant AND o.user_id = v.user_id))
                             AS viewers,
                         sum(v.impressions) AS impressions, sum(v.engagements) AS engagements
                  FROM per_viewer v GROUP BY 1, 2) v),
           (SELECT coalesce(array_agg(ROW(t.session_id, t.post_id)::feed.analytics_engaged_rows), '{}')
            FROM rows_ t WHERE t.engaged),
           (SELECT count(DISTINCT t.session_id) FROM rows_ t),
           (SELECT count(*) FROM rows_ t)
    INTO v_posts, v_sources, v_pages, v_viewers, v_variants, v_flags, v_sessions, v_rows;

    INSERT INTO feed.analytics_daily_posts AS a (day, source, post_id, author_id, impressions, repeats, engagements)
    SELECT d.day, d.source, d.post_id, d.author_id, d.impressions, d.repeats, d.engagements
    FROM unnest(v_posts) d
    ON CONFLICT (day, source, post_id) DO UPDATE
    SET impressions = a.impressions + excluded.impressions, repeats = a.repeats + excluded.repeats,
        engagements = a.engagements + excluded.engagements;
    INSERT INTO feed.analytics_daily_sources AS a (day, source, impressions, repeats, engagements,
                                                   distinct_posts, distinct_authors)
    SELECT s.day, s.source, s.impressions, s.repeats, s.engagements, s.distinct_posts, s.distinct_authors
    FROM unnest(v_sources) s
    ON CONFLICT (day, source) DO UPDATE
    SET impressions = a.impressions + excluded.impressions, repeats = a.repeats + excluded.repeats,
        engagements = a.engagements + excluded.engagements,
        distinct_posts = a.distinct_posts + excluded.distinct_posts,
        distinct_authors = a.distinct_authors + excluded.distinct_authors;
    INSERT INTO feed.analytics_daily_pages AS a (day, pages, items, repeat_share_sum, distinct_authors_sum)
    SELECT p.day, p.pages, p.items, p.repeat_share_sum, p.distinct_authors_sum
    FROM unnest(v_pages) p
    ON CONFLICT (day) DO UPDATE
    SET pages = a.pages + excluded.pages, items = a.items + excluded.items,
        repeat_share_sum = a.repeat_share_sum + excluded.repeat_share_sum,
        distinct_authors_sum = a.distinct_authors_sum + excluded.distinct_authors_sum;
    INSERT INTO feed.analytics_experiment_viewers AS a (experiment, variant, user_id, impressions, engagements)
    SELECT v.experiment, v.variant, v.user_id, v.impressions, v.engagements
    FROM unnest(v_viewers) v
    ON CONFLICT (experiment, variant, user_id) DO UPDATE
    SET impressions = a.impressions + excluded.impressions, engagements = a.engagements + excluded.engagements;
    INSERT INTO feed.analytics_engaged_rows (session_id, post_id)
    SELECT f.session_id, f.post_id FROM unnest(v_flags) f;
    INSERT INTO feed.analytics_experiment_variants AS a (experiment, variant, viewers, impressions, engagements)
    SELECT v.experiment, v.variant, v.viewers, v.impressions, v.engagements
    FROM unnest(v_variants) v
    ON CONFLICT (experiment, variant) DO UPDATE
    SET viewers = a.viewers + excluded.viewers, impressions = a.impressions + excluded.impressions,
        engagements = a.engagements + excluded.engagements;

    UPDATE feed.analytics_rollup_state r SET rolled_up_before = v_cutoff, updated_at = p_now;
    RETURN jsonb_build_object('sessions_rolled_up', v_sessions, 'rows_rolled_up', v_rows, 'late_engagements', v_late,
                              'rolled_up_before', v_cutoff);
END
$func$;
