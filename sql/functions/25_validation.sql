-- Argument checks shared by the public functions: every bad argument is a
-- 22023 naming it (feed._bad_argument, 20_writes.sql), raised before the
-- call writes anything or draws an id. Idempotent: re-applied by every migrate.
--
-- Limits (documented in docs/reference.md, "Errors"):
--   p_context      a JSON object of at most 16384 bytes (its text form), keys typed below
--   p_session_id   at most 200 characters
--   intervals      at most 100 years (p_window, p_lookback)

-------------------------------------------------------------------------------
-- _check_context_values: p_context's size and the type of every key the
-- engine reads (contract §3.1); unknown keys are ignored but count in the
-- size. NULL is '{}'. The feed's _check_context (50_feed.sql) calls it first.
CREATE OR REPLACE FUNCTION feed._check_context_values(p_context jsonb)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_key text;
    v_value jsonb;
BEGIN
    IF p_context IS NULL THEN
        RETURN;
    END IF;
    IF octet_length(p_context::text) > 16384 THEN
        PERFORM feed._bad_argument('p_context', format('at most 16384 bytes of JSON, got %s', octet_length(p_context::text)));
    END IF;
    IF jsonb_typeof(p_context) <> 'object' THEN
        PERFORM feed._bad_argument('p_context', 'must be a JSON object');
    END IF;
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_context) e ORDER BY e.key LOOP
        CONTINUE WHEN jsonb_typeof(v_value) = 'null';
        CASE v_key
            WHEN 'mode', 'profile', 'device', 'connection' THEN
                IF jsonb_typeof(v_value) <> 'string' OR length(v_value #>> '{}') > 100 THEN
                    PERFORM feed._bad_argument('p_context.' || v_key, 'must be a string of at most 100 characters');
                END IF;
            WHEN 'local_hour' THEN
                IF jsonb_typeof(v_value) <> 'number' OR (v_value #>> '{}') !~ '^[0-9]{1,2}$'
                   OR (v_value #>> '{}')::integer > 23 THEN
                    PERFORM feed._bad_argument('p_context.local_hour',
                                               format('must be an integer from 0 to 23, got %s', v_value));
                END IF;
            WHEN 'categories', 'post_types' THEN
                IF jsonb_typeof(v_value) <> 'array'
                   OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_value) e WHERE jsonb_typeof(e) <> 'string') THEN
                    PERFORM feed._bad_argument('p_context.' || v_key, 'must be an array of strings');
                END IF;
            WHEN 'exclude_post_ids' THEN
                IF jsonb_typeof(v_value) <> 'array'
                   OR EXISTS (SELECT 1 FROM jsonb_array_elements(v_value) e
                              WHERE jsonb_typeof(e) <> 'number' OR (e #>> '{}') !~ '^-?[0-9]{1,19}$'
                                 OR (e #>> '{}')::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807) THEN
                    PERFORM feed._bad_argument('p_context.exclude_post_ids', 'must be an array of integer post ids');
                END IF;
            WHEN 'in_network_only', 'include_own_posts' THEN
                IF jsonb_typeof(v_value) <> 'boolean' THEN
                    PERFORM feed._bad_argument('p_context.' || v_key, 'must be true or false');
                END IF;
            ELSE
                NULL;
        END CASE;
    END LOOP;
END
$func$;

-------------------------------------------------------------------------------
-- _check_interval: a positive interval of at most p_max (22023 naming p_argument)
CREATE OR REPLACE FUNCTION feed._check_interval(p_argument text, p_value interval, p_max interval)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_value IS NULL OR p_value <= interval '0' OR p_value > p_max THEN
        PERFORM feed._bad_argument(p_argument, format('must be a positive interval of at most %s, got %s',
                                                      p_max, coalesce(p_value::text, 'null')));
    END IF;
END
$func$;

-------------------------------------------------------------------------------
-- _check_session_id: an impression's session id, at most 200 characters
CREATE OR REPLACE FUNCTION feed._check_session_id(p_session_id text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF length(p_session_id) > 200 THEN
        PERFORM feed._bad_argument('p_session_id', format('at most 200 characters, got %s', length(p_session_id)));
    END IF;
END
$func$;

-------------------------------------------------------------------------------
-- _check_amount: a gift or tip amount (or 0 for any other action) that
-- numeric(12,2) holds exactly: more than two decimals is refused, not rounded
CREATE OR REPLACE FUNCTION feed._check_amount(p_action text, p_value_amount numeric)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_value_amount IS NULL THEN
        PERFORM feed._bad_argument('p_value_amount', 'must not be null');
    ELSIF p_value_amount = 'NaN'::numeric THEN
        PERFORM feed._bad_argument('p_value_amount', 'must be a number, got NaN');
    ELSIF p_action IN ('gift', 'tip') AND p_value_amount <= 0 THEN
        PERFORM feed._bad_argument('p_value_amount', format('must be positive for %s, got %s', p_action, p_value_amount));
    ELSIF p_action NOT IN ('gift', 'tip') AND p_value_amount <> 0 THEN
        PERFORM feed._bad_argument('p_value_amount', format('must be 0 for %s, got %s', p_action, p_value_amount));
    ELSIF p_value_amount >= 1e10 THEN
        PERFORM feed._bad_argument('p_value_amount', format('%s does not fit numeric(12,2) (at most 9999999999.99)',
                                                           p_value_amount));
    ELSIF p_value_amount <> round(p_value_amount, 2) THEN
        PERFORM feed._bad_argument('p_value_amount', format('at most two decimals, got %s', p_value_amount));
    END IF;
END
$func$;
