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
