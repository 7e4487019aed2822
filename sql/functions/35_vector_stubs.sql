-- TEMPORARY stubs so the feed compiles before 40_vectors.sql provides these.
CREATE OR REPLACE FUNCTION feed._live_collaborative(p_user_id bigint, p_limit integer)
RETURNS TABLE (post_id bigint, score double precision, because bigint[])
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $func$ SELECT NULL::bigint, NULL::double precision, NULL::bigint[] WHERE false $func$;
CREATE OR REPLACE FUNCTION feed._taste_candidates(p_user_id bigint, p_limit integer)
RETURNS TABLE (post_id bigint, similarity double precision)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $func$ SELECT NULL::bigint, NULL::double precision WHERE false $func$;
