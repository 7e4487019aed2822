-- Identity and authorization of callers (docs/security.md): who the viewer
-- of an end user's own connection is, and the rule that such a caller acts
-- only as itself. Idempotent: re-applied by every migrate.

-------------------------------------------------------------------------------
-- _integer_id: a text that spells a bigint user id, as bigint; NULL otherwise
CREATE OR REPLACE FUNCTION feed._integer_id(p_text text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT CASE WHEN btrim(p_text) ~ '^[+-]?[0-9]{1,19}$'
                     AND btrim(p_text)::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
                THEN btrim(p_text)::bigint END
$func$;

-------------------------------------------------------------------------------
-- current_viewer: the user id of the end user this connection acts for, or
-- NULL. First the setting pgfeed.viewer_id (an app or pooler runs
-- SET LOCAL pgfeed.viewer_id = '42'; empty counts as unset, which is what it
-- reads as after a SET LOCAL's transaction ended). Otherwise the claim named
-- by the setting viewer_claim in request.jwt.claims (PostgREST >= 9,
-- Supabase), or in request.jwt.claim.<name> (older PostgREST): an integer,
-- as a JSON number or string, is the user id; any other value is looked up in
-- feed.user_identities. STABLE: fixed within a statement. SECURITY DEFINER:
-- a viewer may not read feed.settings or feed.user_identities itself.
CREATE OR REPLACE FUNCTION feed.current_viewer()
RETURNS bigint
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_setting text := nullif(btrim(current_setting('pgfeed.viewer_id', true)), '');
    v_claim_name text;
    v_claims text;
    v_claim jsonb;
    v_subject text;
    v_user_id bigint;
BEGIN
    IF v_setting IS NOT NULL THEN
        v_user_id := feed._integer_id(v_setting);
        IF v_user_id IS NULL THEN
            RAISE EXCEPTION 'pgfeed.viewer_id: % is not a user id (a bigint)', v_setting USING ERRCODE = '22023';
        END IF;
        RETURN v_user_id;
    END IF;

    v_claim_name := feed._setting('viewer_claim');
    v_claims := nullif(btrim(current_setting('request.jwt.claims', true)), '');
    IF v_claims IS NOT NULL THEN
        BEGIN
            v_claim := v_claims::jsonb -> v_claim_name;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'request.jwt.claims: not a JSON object' USING ERRCODE = '22023';
        END;
        v_subject := CASE jsonb_typeof(v_claim) WHEN 'string' THEN v_claim #>> '{}'
                                                 WHEN 'number' THEN v_claim::text END;
    ELSE
        v_subject := nullif(btrim(current_setting('request.jwt.claim.' || v_claim_name, true)), '');
    END IF;
    IF v_subject IS NULL THEN
        RETURN NULL;
    END IF;
    v_user_id := feed._integer_id(v_subject);
    IF v_user_id IS NULL THEN
        SELECT i.user_id INTO v_user_id FROM feed.user_identities i WHERE i.subject = v_subject;
    END IF;
    RETURN v_user_id;
END
$func$;

-------------------------------------------------------------------------------
-- _authorize_viewer: a restricted caller acts only as itself: p_user_id must
-- be feed.current_viewer(), or NULL where the anonymous feed allows it;
-- otherwise 42501 naming p_user_id. Called first by every per-user function,
-- before anything is read or written.
--
-- Restricted: the caller is a member of pgfeed_viewer and of neither
-- pgfeed_app nor pgfeed_admin. Inside a SECURITY DEFINER function
-- current_user is the owner, so the caller is the role set with SET ROLE, or
-- the session user when none is set. A superuser counts as a member of every
-- role, so it is never restricted. Three role-membership probes, no catalog
-- query: this runs on every call of the hot path.
CREATE OR REPLACE FUNCTION feed._authorize_viewer(p_user_id bigint, p_anonymous_allowed boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_caller name := coalesce(nullif(current_setting('role'), 'none'), session_user);
    v_viewer bigint;
BEGIN
    IF NOT pg_has_role(v_caller, 'pgfeed_viewer', 'MEMBER')
       OR pg_has_role(v_caller, 'pgfeed_app', 'MEMBER')
       OR pg_has_role(v_caller, 'pgfeed_admin', 'MEMBER') THEN
        RETURN;
    END IF;
    IF p_user_id IS NULL AND p_anonymous_allowed THEN
        RETURN;
    END IF;
    v_viewer := feed.current_viewer();
    IF p_user_id IS NULL OR v_viewer IS NULL OR p_user_id <> v_viewer THEN
        RAISE EXCEPTION 'p_user_id: a viewer may act only as itself (feed.current_viewer() is %, p_user_id is %)',
            coalesce(v_viewer::text, 'NULL'), coalesce(p_user_id::text, 'NULL')
            USING ERRCODE = '42501',
                  HINT = 'set pgfeed.viewer_id or request.jwt.claims for this connection; see docs/security.md';
    END IF;
END
$func$;
