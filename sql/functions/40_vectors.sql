-- Vectors and collaborative filtering: taste vectors, similar_posts,
-- build_recommendations. (Filled in by the vector issue.)

-------------------------------------------------------------------------------
-- _update_taste: move the viewer's taste vector after one action
CREATE OR REPLACE FUNCTION feed._update_taste(
    p_user_id bigint, p_post_id bigint, p_action text, p_watch_ratio double precision, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, @extschema:vector@, pg_temp
AS $func$
BEGIN
    NULL;
END
$func$;
