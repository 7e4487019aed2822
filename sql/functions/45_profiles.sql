-- Shipped ranking profiles (contract §4.10). Applied on every migrate with
-- ON CONFLICT DO NOTHING: a profile an operator changed is never overwritten;
-- `pgfeed profiles reset NAME` (or deleting the row and migrating) restores it.
--
-- weights: component -> weight (score = sum of weight * component)
-- params:  how components are scaled (see docs/reference.md, "Components")
-- source_quotas: source -> share of the page reserved for that source
--
-- Components: trending, recency, social_tie, collective, author_affinity,
-- author_recency, engagement, post_type, preferred_type, category_affinity,
-- creator_quality, context, novelty, taste_similarity, collaborative.

-------------------------------------------------------------------------------
-- _components: the scoring components, in the order _score_posts returns them
CREATE OR REPLACE FUNCTION feed._components()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT ARRAY['trending', 'recency', 'social_tie', 'collective', 'author_affinity', 'author_recency',
                 'engagement', 'post_type', 'preferred_type', 'category_affinity', 'creator_quality',
                 'context', 'novelty', 'taste_similarity', 'collaborative']
$func$;

-------------------------------------------------------------------------------
-- _profiles_check: operators edit profiles with plain UPDATEs, so the table
-- guards itself: known components and sources, finite non-negative numbers,
-- quotas that fit on a page
CREATE OR REPLACE FUNCTION feed._profiles_check()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_bad text;
BEGIN
    SELECT key INTO v_bad FROM jsonb_each(NEW.weights)
    WHERE NOT key = ANY (feed._components()) OR jsonb_typeof(value) <> 'number' LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'profile %: weights.% is not a known component with a numeric weight', NEW.name, v_bad
            USING ERRCODE = '22023', HINT = 'components: ' || array_to_string(feed._components(), ', ');
    END IF;
    SELECT key INTO v_bad FROM jsonb_each(NEW.source_quotas)
    WHERE key NOT IN ('following', 'collective', 'collaborative', 'similar', 'rising', 'trending', 'fresh')
       OR jsonb_typeof(value) <> 'number' OR value::text::numeric NOT BETWEEN 0 AND 1 LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'profile %: source_quotas.% must be a known source with a share between 0 and 1', NEW.name, v_bad
            USING ERRCODE = '22023';
    END IF;
    IF (SELECT coalesce(sum(value::text::numeric), 0) FROM jsonb_each(NEW.source_quotas)) > 1 THEN
        RAISE EXCEPTION 'profile %: source_quotas add up to more than the page', NEW.name USING ERRCODE = '22023';
    END IF;
    SELECT key INTO v_bad FROM jsonb_each(NEW.params)
    WHERE jsonb_typeof(value) NOT IN ('number', 'null') OR (jsonb_typeof(value) = 'number' AND value::text::numeric < 0)
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'profile %: params.% must be a non-negative number or null', NEW.name, v_bad
            USING ERRCODE = '22023';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$func$;

CREATE OR REPLACE TRIGGER ranking_profiles_check
    BEFORE INSERT OR UPDATE ON feed.ranking_profiles
    FOR EACH ROW EXECUTE FUNCTION feed._profiles_check();

INSERT INTO feed.ranking_profiles (name, description, weights, source_quotas, params) VALUES
(
    'default',
    'Seed 004 (Vroom): engagement 40% (post engagement, author and category affinity, creator quality), '
    'freshness 30%, context 20%, diversity 10% (novelty, author-diversity discount), epsilon exploration.',
    '{"engagement": 0.20, "author_affinity": 0.08, "author_recency": 0.02, "category_affinity": 0.05,
      "creator_quality": 0.05, "recency": 0.30, "context": 0.20, "novelty": 0.10,
      "social_tie": 0.10, "collective": 0.05, "taste_similarity": 0.05, "collaborative": 0.05}',
    '{}',
    '{"recency_points": 1, "recency_tau_hours": 24, "follow_points": 1, "collective_points": 1,
      "author_points": 0.125, "author_cap": 1, "engagement_scale": 0.02, "engagement_cap": 50,
      "post_type_points": 0.1, "post_type_cap": 1}'
),
(
    'social',
    'Seed 001 (art community): 0.15·100·e^(-h/24) + 0.25·50·[follows author] + 0.20·min(5·n, 40) '
    '+ 0.15·min(hearts + 2·praise + 5·trophies + 0.5·comments, 50) + 0.15·30·[in collective] '
    '+ 0.10·10·(interactions with the post type, top 3 types).',
    '{"recency": 0.15, "social_tie": 0.25, "author_affinity": 0.20, "engagement": 0.15,
      "collective": 0.15, "post_type": 0.10}',
    '{}',
    '{"recency_points": 100, "recency_tau_hours": 24, "follow_points": 50, "collective_points": 30,
      "author_points": 5, "author_cap": 40, "engagement_scale": 1, "engagement_cap": 50,
      "post_type_points": 10, "post_type_cap": null}'
),
(
    'blingram',
    'Seed 000 (Blingram): the trending score, pages mixed 6-3-1: 60% trending, 30% following, 10% rising.',
    '{"trending": 1}',
    '{"trending": 0.6, "following": 0.3, "rising": 0.1}',
    '{"epsilon": 0}'
),
(
    'hybrid',
    'Seed 003 (Threads): 0.4·collaborative + 0.3·content (taste similarity) + 0.2·recency + 0.1·engagement.',
    '{"collaborative": 0.4, "taste_similarity": 0.3, "recency": 0.2, "engagement": 0.1}',
    '{}',
    '{"recency_points": 1, "recency_tau_hours": 24, "engagement_scale": 0.02, "engagement_cap": 50}'
),
(
    'relevance',
    'Pure relevance for offline evaluation: collaborative filtering and taste similarity only, no exploration.',
    '{"collaborative": 1.0, "taste_similarity": 0.1}',
    '{}',
    '{"epsilon": 0}'
)
ON CONFLICT (name) DO NOTHING;
