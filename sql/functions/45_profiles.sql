-- Shipped ranking profiles (contract §4.10). Applied on every migrate: a
-- missing shipped profile is inserted, an unedited one is updated, a profile
-- an operator changed is never overwritten; `pgfeed profiles reset NAME` (or
-- deleting the row and migrating) restores it.
--
-- weights: component -> weight (score = sum of weight * component)
-- params:  how components are scaled (see docs/reference.md, "Components")
-- source_quotas: source -> share of the page reserved for that source
--
-- Components: trending, recency, social_tie, collective, author_affinity,
-- author_recency, engagement, post_type, preferred_type, category_affinity,
-- creator_quality, context, novelty, taste_similarity, collaborative,
-- viewer_engagement, tag_affinity.

-------------------------------------------------------------------------------
-- _components: the scoring components, in the order _score_posts returns them
CREATE OR REPLACE FUNCTION feed._components()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT ARRAY['trending', 'recency', 'social_tie', 'collective', 'author_affinity', 'author_recency',
                 'engagement', 'post_type', 'preferred_type', 'category_affinity', 'creator_quality',
                 'context', 'novelty', 'taste_similarity', 'collaborative', 'viewer_engagement', 'tag_affinity']
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

-- The shipped profiles. Each is inserted when missing; a shipped profile
-- still exactly as an earlier release shipped it (never edited by an
-- operator) is brought up to date, an edited one is left alone.
DROP TABLE IF EXISTS pg_temp.shipped_profiles;
CREATE TEMPORARY TABLE shipped_profiles AS
SELECT * FROM (VALUES
(
    'default',
    'Engagement 40% (the post''s engagement 0.15, the viewer''s own engagement habits applied to the post 0.10, '
    'author affinity 0.06, author recency 0.02, category affinity 0.04, creator quality 0.03), freshness 30% '
    '(recency, e^(-h/24)), context 20% (device, connection, time of day), diversity 10% (novelty); then the '
    'author-diversity multiplier; about 10% of slots explore (setting epsilon).',
    '{"engagement": 0.15, "viewer_engagement": 0.10, "author_affinity": 0.06, "author_recency": 0.02,
      "category_affinity": 0.04, "creator_quality": 0.03, "recency": 0.30, "context": 0.20, "novelty": 0.10}'::jsonb,
    '{}'::jsonb,
    '{"recency_points": 1, "recency_tau_hours": 24, "author_points": 0.125, "author_cap": 1,
      "engagement_scale": 0.02, "engagement_cap": 50}'::jsonb
),
(
    'default_plus',
    'The default formula plus social signals and relevance: follows 0.10, collectives 0.05, taste similarity 0.05, '
    'collaborative 0.05, explicitly preferred post types 0.05, tag affinity 0.05 (the viewer''s taste for the '
    'post''s tags); then the author-diversity multiplier; about 10% of slots explore (setting epsilon).',
    '{"engagement": 0.15, "viewer_engagement": 0.10, "author_affinity": 0.06, "author_recency": 0.02,
      "category_affinity": 0.04, "creator_quality": 0.03, "recency": 0.30, "context": 0.20, "novelty": 0.10,
      "social_tie": 0.10, "collective": 0.05, "taste_similarity": 0.05, "collaborative": 0.05,
      "preferred_type": 0.05, "tag_affinity": 0.05}'::jsonb,
    '{}'::jsonb,
    '{"recency_points": 1, "recency_tau_hours": 24, "follow_points": 1, "collective_points": 1,
      "author_points": 0.125, "author_cap": 1, "engagement_scale": 0.02, "engagement_cap": 50,
      "preferred_type_points": 1, "tag_top_k": 3}'::jsonb
),
(
    'social',
    'Art-community formula: 0.15·100·e^(-h/24) + 0.25·50·[follows author] + 0.20·min(5·n, 40) '
    '+ 0.15·min(hearts + 2·praise + 5·trophies + 0.5·comments, 50) + 0.15·30·[in collective] '
    '+ 0.10·(10·interactions with the post type, top 3 types, + 50 when the viewer prefers the type); '
    'then the author-diversity multiplier; no exploration.',
    '{"recency": 0.15, "social_tie": 0.25, "author_affinity": 0.20, "engagement": 0.15,
      "collective": 0.15, "post_type": 0.10, "preferred_type": 0.10}'::jsonb,
    '{}'::jsonb,
    '{"recency_points": 100, "recency_tau_hours": 24, "follow_points": 50, "collective_points": 30,
      "author_points": 5, "author_cap": 40, "engagement_scale": 1, "engagement_cap": 50,
      "post_type_points": 10, "post_type_cap": null, "preferred_type_points": 50, "epsilon": 0}'::jsonb
),
(
    'blingram',
    'Monetization velocity: the trending score (likes, comments, shares, gifts, tips over age^gravity); pages '
    'mixed 6-3-1: 60% best trending, 30% newest posts of followed authors, 10% a seeded random pick of the '
    'rising window''s posts; then the author-diversity multiplier; no exploration.',
    '{"trending": 1}'::jsonb,
    '{"trending": 0.6, "following": 0.3, "rising": 0.1}'::jsonb,
    '{"epsilon": 0, "following_newest": 1}'::jsonb
),
(
    'hybrid',
    'Hybrid recommender: 0.4·collaborative + 0.3·content (taste similarity) + 0.2·recency + 0.1·engagement; '
    'then the author-diversity multiplier; about 10% of slots explore (setting epsilon).',
    '{"collaborative": 0.4, "taste_similarity": 0.3, "recency": 0.2, "engagement": 0.1}'::jsonb,
    '{}'::jsonb,
    '{"recency_points": 1, "recency_tau_hours": 24, "engagement_scale": 0.02, "engagement_cap": 50}'::jsonb
),
(
    'relevance',
    'Pure relevance for offline evaluation: collaborative filtering and taste similarity only, no exploration.',
    '{"collaborative": 1.0, "taste_similarity": 0.1}'::jsonb,
    '{}'::jsonb,
    '{"epsilon": 0}'::jsonb
)) AS v (name, description, weights, source_quotas, params);

-- earlier releases' shipped values (weights, source_quotas, params): a
-- profile still holding them was never edited and takes the new ones
UPDATE feed.ranking_profiles r
SET description = s.description, weights = s.weights, source_quotas = s.source_quotas, params = s.params
FROM pg_temp.shipped_profiles s
JOIN (VALUES
    ('default',
     '{"engagement": 0.20, "author_affinity": 0.08, "author_recency": 0.02, "category_affinity": 0.05,
       "creator_quality": 0.05, "recency": 0.30, "context": 0.20, "novelty": 0.10,
       "social_tie": 0.10, "collective": 0.05, "taste_similarity": 0.05, "collaborative": 0.05}'::jsonb,
     '{}'::jsonb,
     '{"recency_points": 1, "recency_tau_hours": 24, "follow_points": 1, "collective_points": 1,
       "author_points": 0.125, "author_cap": 1, "engagement_scale": 0.02, "engagement_cap": 50,
       "post_type_points": 0.1, "post_type_cap": 1}'::jsonb),
    ('social',
     '{"recency": 0.15, "social_tie": 0.25, "author_affinity": 0.20, "engagement": 0.15,
       "collective": 0.15, "post_type": 0.10}'::jsonb,
     '{}'::jsonb,
     '{"recency_points": 100, "recency_tau_hours": 24, "follow_points": 50, "collective_points": 30,
       "author_points": 5, "author_cap": 40, "engagement_scale": 1, "engagement_cap": 50,
       "post_type_points": 10, "post_type_cap": null}'::jsonb),
    ('default_plus',
     '{"engagement": 0.15, "viewer_engagement": 0.10, "author_affinity": 0.06, "author_recency": 0.02,
       "category_affinity": 0.04, "creator_quality": 0.03, "recency": 0.30, "context": 0.20, "novelty": 0.10,
       "social_tie": 0.10, "collective": 0.05, "taste_similarity": 0.05, "collaborative": 0.05,
       "preferred_type": 0.05}'::jsonb,
     '{}'::jsonb,
     '{"recency_points": 1, "recency_tau_hours": 24, "follow_points": 1, "collective_points": 1,
       "author_points": 0.125, "author_cap": 1, "engagement_scale": 0.02, "engagement_cap": 50,
       "preferred_type_points": 1}'::jsonb),
    ('blingram', '{"trending": 1}'::jsonb, '{"trending": 0.6, "following": 0.3, "rising": 0.1}'::jsonb,
     '{"epsilon": 0}'::jsonb),
    ('hybrid', '{"collaborative": 0.4, "taste_similarity": 0.3, "recency": 0.2, "engagement": 0.1}'::jsonb,
     '{}'::jsonb,
     '{"recency_points": 1, "recency_tau_hours": 24, "engagement_scale": 0.02, "engagement_cap": 50}'::jsonb),
    ('relevance', '{"collaborative": 1.0, "taste_similarity": 0.1}'::jsonb, '{}'::jsonb, '{"epsilon": 0}'::jsonb)
) AS old (name, weights, source_quotas, params) ON old.name = s.name
WHERE r.name = s.name AND r.weights = old.weights AND r.source_quotas = old.source_quotas
  AND r.params = old.params
  AND (r.description, r.weights, r.source_quotas, r.params)
      IS DISTINCT FROM (s.description, s.weights, s.source_quotas, s.params);

-- an unedited shipped profile whose description still cites a design document
UPDATE feed.ranking_profiles r SET description = s.description
FROM pg_temp.shipped_profiles s
WHERE r.name = s.name AND r.weights = s.weights AND r.source_quotas = s.source_quotas AND r.params = s.params
  AND r.description IS DISTINCT FROM s.description AND r.description ~ '^Seed 00[0-9] ';

INSERT INTO feed.ranking_profiles (name, description, weights, source_quotas, params)
SELECT s.name, s.description, s.weights, s.source_quotas, s.params FROM pg_temp.shipped_profiles s
ON CONFLICT (name) DO NOTHING;

DROP TABLE pg_temp.shipped_profiles;
