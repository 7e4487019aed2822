-- pgfeed settings: typed accessors over feed.settings and the check that keeps
-- every value castable to its kind. Idempotent: re-applied by every migrate.

-------------------------------------------------------------------------------
-- _setting: the raw text value of a named setting (raises 22023 if unknown);
-- inside a feed call, an experiment variant's override of it wins
-- (feed._setting_override, 70_experiments.sql; validated when the experiment
-- was written)
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
    RETURN coalesce(feed._setting_override(p_name), v_value);
END
$func$;

-------------------------------------------------------------------------------
-- _setting_number / _setting_integer / _setting_interval: typed accessors.
-- SQL-standard bodies: the planner inlines each into its caller, so a read is
-- one call of _setting instead of two nested calls (a feed call reads about a
-- dozen settings). Their names are bound when they are created, under the
-- install's pinned search_path, so they need no SET clause of their own.
CREATE OR REPLACE FUNCTION feed._setting_number(p_name text)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE
RETURN feed._setting(p_name)::double precision;

CREATE OR REPLACE FUNCTION feed._setting_integer(p_name text)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
RETURN feed._setting(p_name)::integer;

CREATE OR REPLACE FUNCTION feed._setting_interval(p_name text)
RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
RETURN feed._setting(p_name)::interval;

-------------------------------------------------------------------------------
-- _setting_problem: why p_value is not a valid value of kind p_kind within
-- [p_min, p_max] (for kind text: its length), or NULL when it is. A missing
-- bound of a number, integer or interval means "not negative" (a setting
-- added by a file that names no range); tests/test_settings.py requires
-- every shipped setting to name both.
CREATE OR REPLACE FUNCTION feed._setting_problem(p_kind text, p_value text, p_min text, p_max text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_number double precision;
    v_interval interval;
    v_range text := format('between %s and %s', coalesce(p_min, '0'), coalesce(p_max, 'any'));
BEGIN
    IF p_value IS NULL THEN
        RETURN 'must not be null';
    END IF;
    BEGIN
        CASE p_kind
            WHEN 'integer' THEN
                IF p_value !~ '^\s*[+-]?[0-9]+\s*$' THEN
                    RETURN format('%L is not an integer', p_value);
                END IF;
                v_number := p_value::integer;
                IF v_number < coalesce(p_min::integer, 0) OR v_number > p_max::integer THEN
                    RETURN format('%s is not %s', p_value, v_range);
                END IF;
            WHEN 'number' THEN
                v_number := p_value::double precision;
                IF v_number = 'NaN' OR v_number IN ('Infinity', '-Infinity') THEN
                    RETURN format('%s is not a finite number', p_value);
                END IF;
                IF v_number < coalesce(p_min::double precision, 0) OR v_number > p_max::double precision THEN
                    RETURN format('%s is not %s', p_value, v_range);
                END IF;
            WHEN 'interval' THEN
                v_interval := p_value::interval;
                IF v_interval < coalesce(p_min::interval, interval '0') OR v_interval > p_max::interval THEN
                    RETURN format('%s is not %s', p_value, v_range);
                END IF;
            WHEN 'boolean' THEN
                PERFORM p_value::boolean;
            WHEN 'text' THEN
                IF length(p_value) < coalesce(p_min::integer, 0) OR length(p_value) > p_max::integer THEN
                    RETURN format('must be %s characters long, got %s', v_range, length(p_value));
                END IF;
            ELSE
                RETURN format('unknown kind %L', p_kind);
        END CASE;
    EXCEPTION WHEN data_exception THEN
        RETURN format('%L is not a valid %s', p_value, p_kind);
    END;
    RETURN NULL;
END
$func$;

-------------------------------------------------------------------------------
-- _settings_check: a setting's value (and default) must be of its kind and
-- within its range [min_value, max_value]; operators change settings with a
-- plain UPDATE (psql, an admin role, `pgfeed settings set`), so the table
-- guards itself: 22023 naming the setting, and nothing changes
CREATE OR REPLACE FUNCTION feed._settings_check()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_problem text;
    -- read through jsonb: a downgrade below revision 0006 drops these columns
    -- while this trigger stays until the schema goes
    v_min text := to_jsonb(NEW) ->> 'min_value';
    v_max text := to_jsonb(NEW) ->> 'max_value';
BEGIN
    -- the bounds themselves must be values of the kind
    IF NEW.kind <> 'text' THEN
        v_problem := coalesce(feed._setting_problem(NEW.kind, coalesce(v_min, NEW.default_value), NULL, NULL),
                              feed._setting_problem(NEW.kind, coalesce(v_max, NEW.default_value), NULL, NULL));
        IF v_problem IS NOT NULL THEN
            RAISE EXCEPTION 'setting %: its range is invalid: %', NEW.name, v_problem USING ERRCODE = '22023';
        END IF;
    END IF;
    v_problem := feed._setting_problem(NEW.kind, NEW.value, v_min, v_max);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'setting %: %', NEW.name, v_problem
            USING ERRCODE = '22023',
                  HINT = format('%s setting, valid %s to %s', NEW.kind, coalesce(v_min, '0'), coalesce(v_max, 'any'));
    END IF;
    v_problem := feed._setting_problem(NEW.kind, NEW.default_value, v_min, v_max);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'setting %: default %', NEW.name, v_problem USING ERRCODE = '22023';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$func$;

CREATE OR REPLACE TRIGGER settings_check
    BEFORE INSERT OR UPDATE ON feed.settings
    FOR EACH ROW EXECUTE FUNCTION feed._settings_check();

-------------------------------------------------------------------------------
-- Every setting pgfeed knows, with its default, kind and valid range (the one
-- place they are written; 40_vectors.sql adds its own the same way). Applied
-- on every migrate: a new setting appears with its default; an operator's
-- value is never overwritten. The ranges keep every later call working: an
-- interval added to now() stays far from timestamp overflow, a count stays
-- under the limits the feed checks, a weight keeps the trending score finite.
INSERT INTO feed.settings AS s (name, value, default_value, kind, min_value, max_value, description)
SELECT d.name, d.value, d.value, d.kind, d.min_value, d.max_value, d.description FROM (VALUES
    ('cooldown',                 '30 days',    'interval', '0',        '100 years',   'A post seen or interacted with within this window is not shown again (except as a controlled repeat).'),
    ('max_repeats_per_page',     '2',          'integer',  '0',        '100',        'At most this many controlled repeats per page while unseen posts remain.'),
    ('protected_top_ranks',      '6',          'integer',  '0',        '100',        'Controlled repeats never take ranks 1..N unless fewer than N unseen eligible posts exist.'),
    ('inventory_waterline',      '24',         'integer',  '0',        '500',        'When unseen inventory falls under this, the ladder expands to older and out-of-network posts.'),
    ('max_duration_ms',          '180000',     'integer',  '0',        '2147483647', 'Posts longer than this (duration_ms) are never shown.'),
    ('epsilon',                  '0.10',       'number',   '0',        '0.5',        'Share of page slots given to exploration candidates.'),
    ('max_posts_per_author',     '2',          'integer',  '1',        '100',        'At most this many posts of one author per page while other candidates exist.'),
    ('session_lifetime',         '30 minutes', 'interval', '1 second', '7 days',     'How long a feed session (and its cursors) lives.'),
    ('trending_weight_likes',    '1',          'number',   '0',        '1000000',    'Trending formula: weight of a like.'),
    ('trending_weight_comments', '3',          'number',   '0',        '1000000',    'Trending formula: weight of a comment.'),
    ('trending_weight_shares',   '5',          'number',   '0',        '1000000',    'Trending formula: weight of a share.'),
    ('trending_weight_gifts',    '50',         'number',   '0',        '1000000',    'Trending formula: weight of one unit of gift amount.'),
    ('trending_weight_tips',     '50',         'number',   '0',        '1000000',    'Trending formula: weight of one unit of tip amount.'),
    ('gravity',                  '1.8',        'number',   '0',        '10',         'Trending formula: how fast scores decay with age.'),
    ('trending_window',          '7 days',     'interval', '1 minute', '10 years',   'The heartbeat recomputes trending scores of posts created within this window.'),
    ('ema_alpha',                '0.2',        'number',   '0',        '1',          'Smoothing factor of the per-viewer moving averages (user_signals).'),
    ('category_affinity_half_life', '14 days', 'interval', '0',        '10 years',   'A viewer''s category and tag affinities halve over this time without new signals.'),
    ('author_recency_window',    '7 days',     'interval', '1 second', '10 years',   'The "recently interacted" author boost decays to zero over this window.'),
    ('creator_quality_window',   '30 days',    'interval', '1 second', '10 years',   'Creator quality is computed over the creator''s posts of this window.'),
    ('heartbeat_batch_size',     '5000',       'integer',  '1',        '1000000',    'Posts per heartbeat batch (rows locked at once).'),
    ('heartbeat_min_change',     '0.01',       'number',   '0',        '0.5',        'The heartbeat leaves a post''s trending score alone while age has moved it by less than this fraction; writes rescore a post at once, and a post leaving the window gets its exact final score.'),
    ('maintenance_batch_size',   '50000',      'integer',  '1',        '10000000',   'At most this many old impressions/sightings pruned per maintenance run.'),
    ('rising_window',            '1 hour',     'interval', '1 minute', '10 years',   'The rising source offers posts created within this window (the last hour by default).'),
    ('viewer_claim',             'sub',        'text',     '1',        '200',        'The JWT claim (in request.jwt.claims, as PostgREST and Supabase set it) that names the viewer: an integer is the user id, any other value is looked up in feed.user_identities.'),
    ('max_category_share',       '0.5',        'number',   '0',        '1',          'At most floor(this x page size) rows of a page (at least 1) are of one category while candidates of other categories exist.'),
    ('personalization_enabled',  'true',       'boolean',  NULL,       NULL,         'When false, every known viewer gets the trending mode unless p_context names a mode (anonymous viewers are unchanged).')
) AS d (name, value, kind, min_value, max_value, description)
ON CONFLICT (name) DO UPDATE
SET default_value = excluded.default_value, kind = excluded.kind, min_value = excluded.min_value,
    max_value = excluded.max_value, description = excluded.description
WHERE (s.default_value, s.kind, s.min_value, s.max_value, s.description)
      IS DISTINCT FROM (excluded.default_value, excluded.kind, excluded.min_value, excluded.max_value, excluded.description);
