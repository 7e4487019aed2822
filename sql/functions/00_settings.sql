-- pgfeed settings: typed accessors over feed.settings and the check that keeps
-- every value castable to its kind. Idempotent: re-applied by every migrate.

-------------------------------------------------------------------------------
-- _setting: the raw text value of a named setting (raises 22023 if unknown)
CREATE OR REPLACE FUNCTION feed._setting(p_name text)
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_value text;
BEGIN
    SELECT s.value INTO v_value FROM feed.settings s WHERE s.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown setting: %', p_name
            USING ERRCODE = '22023', HINT = 'SELECT name FROM feed.settings lists them';
    END IF;
    RETURN v_value;
END
$func$;

-------------------------------------------------------------------------------
-- _setting_number / _setting_integer / _setting_interval: typed accessors
CREATE OR REPLACE FUNCTION feed._setting_number(p_name text)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$ SELECT feed._setting(p_name)::double precision $func$;

CREATE OR REPLACE FUNCTION feed._setting_integer(p_name text)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$ SELECT feed._setting(p_name)::integer $func$;

CREATE OR REPLACE FUNCTION feed._setting_interval(p_name text)
RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$ SELECT feed._setting(p_name)::interval $func$;

-------------------------------------------------------------------------------
-- _settings_check: a setting's value must parse as its kind and not be
-- negative; operators change settings with a plain UPDATE, so the table guards itself
CREATE OR REPLACE FUNCTION feed._settings_check()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    BEGIN
        CASE NEW.kind
            WHEN 'integer' THEN
                IF NEW.value::integer < 0 OR NEW.default_value::integer < 0 THEN
                    RAISE EXCEPTION USING ERRCODE = '22023';
                END IF;
            WHEN 'number' THEN
                IF NEW.value::double precision < 0 OR NEW.default_value::double precision < 0
                   OR NEW.value::double precision = 'NaN' OR NEW.value::double precision = 'Infinity' THEN
                    RAISE EXCEPTION USING ERRCODE = '22023';
                END IF;
            WHEN 'interval' THEN
                IF NEW.value::interval < interval '0' OR NEW.default_value::interval < interval '0' THEN
                    RAISE EXCEPTION USING ERRCODE = '22023';
                END IF;
            ELSE
                NULL;
        END CASE;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'setting %: % is not a valid non-negative %', NEW.name, NEW.value, NEW.kind
            USING ERRCODE = '22023';
    END;
    NEW.updated_at := now();
    RETURN NEW;
END
$func$;

CREATE OR REPLACE TRIGGER settings_check
    BEFORE INSERT OR UPDATE ON feed.settings
    FOR EACH ROW EXECUTE FUNCTION feed._settings_check();

-------------------------------------------------------------------------------
-- Every setting pgfeed knows, with its default. Applied on every migrate: a new
-- setting appears with its default; an operator's value is never overwritten.
INSERT INTO feed.settings AS s (name, value, default_value, kind, description)
SELECT d.name, d.value, d.value, d.kind, d.description FROM (VALUES
    ('cooldown',                 '30 days',    'interval', 'A post seen or interacted with within this window is not shown again (except as a controlled repeat).'),
    ('max_repeats_per_page',     '2',          'integer',  'At most this many controlled repeats per page while unseen posts remain.'),
    ('protected_top_ranks',      '6',          'integer',  'Controlled repeats never take ranks 1..N unless fewer than N unseen eligible posts exist.'),
    ('inventory_waterline',      '24',         'integer',  'When unseen inventory falls under this, the ladder expands to older and out-of-network posts.'),
    ('max_duration_ms',          '180000',     'integer',  'Posts longer than this (duration_ms) are never shown.'),
    ('epsilon',                  '0.10',       'number',   'Share of page slots given to exploration candidates.'),
    ('max_posts_per_author',     '2',          'integer',  'At most this many posts of one author per page while other candidates exist.'),
    ('session_lifetime',         '30 minutes', 'interval', 'How long a feed session (and its cursors) lives.'),
    ('trending_weight_likes',    '1',          'number',   'Trending formula: weight of a like.'),
    ('trending_weight_comments', '3',          'number',   'Trending formula: weight of a comment.'),
    ('trending_weight_shares',   '5',          'number',   'Trending formula: weight of a share.'),
    ('trending_weight_gifts',    '50',         'number',   'Trending formula: weight of one unit of gift amount.'),
    ('trending_weight_tips',     '50',         'number',   'Trending formula: weight of one unit of tip amount.'),
    ('gravity',                  '1.8',        'number',   'Trending formula: how fast scores decay with age.'),
    ('trending_window',          '7 days',     'interval', 'The heartbeat recomputes trending scores of posts created within this window.'),
    ('ema_alpha',                '0.2',        'number',   'Smoothing factor of the per-viewer moving averages (user_signals).'),
    ('category_affinity_half_life', '14 days', 'interval', 'A viewer''s category affinity halves over this time without new signals.'),
    ('author_recency_window',    '7 days',     'interval', 'The "recently interacted" author boost decays to zero over this window.'),
    ('creator_quality_window',   '30 days',    'interval', 'Creator quality is computed over the creator''s posts of this window.'),
    ('heartbeat_batch_size',     '5000',       'integer',  'Posts per heartbeat batch (rows locked at once).'),
    ('maintenance_batch_size',   '50000',      'integer',  'At most this many old impressions/sightings pruned per maintenance run.'),
    ('rising_window',            '1 hour',     'interval', 'The rising source offers posts created within this window (seed 000: the last hour).'),
    ('viewer_claim',             'sub',        'text',     'The JWT claim (in request.jwt.claims, as PostgREST and Supabase set it) that names the viewer: an integer is the user id, any other value is looked up in feed.user_identities.'),
    ('max_category_share',       '0.5',        'number',   'At most floor(this x page size) rows of a page (at least 1) are of one category while candidates of other categories exist.'),
    ('personalization_enabled',  'true',       'text',     'When false, every known viewer gets the trending mode unless p_context names a mode (anonymous viewers are unchanged).')
) AS d (name, value, kind, description)
ON CONFLICT (name) DO UPDATE
SET default_value = excluded.default_value, kind = excluded.kind, description = excluded.description
WHERE (s.default_value, s.kind, s.description) IS DISTINCT FROM (excluded.default_value, excluded.kind, excluded.description);
