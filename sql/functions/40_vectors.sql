-- Vectors and collaborative filtering: similar_posts and the taste vectors
-- (content, through the HNSW index on feed.posts.embedding), and
-- build_recommendations with its item-to-item neighbours (collaborative).
-- Idempotent: re-applied by every migrate.

-------------------------------------------------------------------------------
-- Settings of this file. A new setting appears with its default; an
-- operator's value is never overwritten (same rule as 00_settings.sql).
INSERT INTO feed.settings AS s (name, value, default_value, kind, min_value, max_value, description)
SELECT d.name, d.value, d.value, d.kind, d.min_value, d.max_value, d.description FROM (VALUES
    ('taste_alpha', '0.1',      'number',   '0', '1',   'Taste vectors: how far one like (weight 1) moves a viewer''s taste toward the post''s embedding; stronger acts move it more (capped at 0.9).'),
    ('recommendation_ttl', '24 hours', 'interval', '1 minute', '10 years', 'build_recommendations: precomputed recommendations expire after this.'),
    ('recommendation_neighbors', '100',      'integer',  '1', '10000',  'build_recommendations: item-to-item neighbours kept per post (feed.item_neighbors).'),
    ('recommendations_per_user', '50',       'integer',  '1', '10000',  'build_recommendations: recommendations kept per viewer (feed.recommendations).'),
    ('recommendation_history', '300',      'integer',  '1', '100000',  'build_recommendations: a viewer''s most recent positive posts that are expanded into recommendations; older ones are ignored.'),
    ('recommendation_recency_exponent', '0', 'number', '0', '10',   'build_recommendations and live scoring: the viewer''s r-th most recent positive post (r = 1, 2, ...) weighs r^-exponent when its neighbours are summed (0: every post alike; 1 with recommendation_history 50 suits feeds where what a viewer engages with next follows their latest taste, see docs/evaluation.md).'),
    ('recommendation_pair_history', '100',      'integer',  '1', '10000',  'build_recommendations: a viewer''s most recent positive posts that count in co-occurrence (pairs cost the square of this; bounds very long histories).'),
    ('recommendation_history_exponent', '0.75',    'number',   '0', '10',   'build_recommendations: a viewer with n positive posts adds n^-exponent to each co-occurrence (long histories say less about any one pair).'),
    ('recommendation_popularity_exponent', '0.55', 'number',   '0', '10',   'build_recommendations: sim(i, j) divides by n_j^exponent, n_j = viewers of the neighbour j (0 favours popular posts, 1 removes popularity).'),
    ('recommendation_min_support', '2',        'integer',  '1', '1000000',  'build_recommendations: two posts are neighbours only when at least this many viewers engaged with both (1 keeps one-off pairs: more reach for rarely seen posts, much more work).'),
    ('recommendation_shrinkage', '20',       'number',   '0', '1000000000',   'build_recommendations: added to the similarity''s denominator; damps pairs of rarely seen posts.'),
    ('recommendation_min_watch_ratio', '0.5',      'number',   '0', '1',   'build_recommendations: a view counts as a positive signal when its watch ratio is at least this.'),
    ('recommendation_regularization', '100',  'number',   '0', '1000000000', 'build_recommendations: 0 keeps the similarities as neighbour weights (item KNN); above 0, each post''s weights over its recommendation_neighbors most similar posts are a ridge regression with this penalty (a sparse EASE: better recommendations than item KNN, a longer full build, bounded by recommendation_regression_budget; 100 suits MovieLens 100K, see docs/evaluation.md).'),
    ('recommendation_regression_steps', '10', 'integer',  '1', '100',  'build_recommendations with recommendation_regularization above 0: conjugate-gradient steps per post''s regression (each step costs one pass over the posts'' systems).'),
    ('recommendation_regression_budget', '50000000', 'integer', '1', '2000000000', 'build_recommendations with recommendation_regularization above 0: most entries in all posts'' systems together (the sum over posts of their number of inputs squared); above it, the posts with the most inputs keep only their most similar ones, as many as fits (bounds the build time of a large catalogue; MovieLens 100K needs under 12 million).'),
    ('live_collaborative_history', '20',       'integer',  '1', '1000',  'Live collaborative scoring: how many of the viewer''s most recent positive posts are expanded through feed.item_neighbors.')
) AS d (name, value, kind, min_value, max_value, description)
ON CONFLICT (name) DO UPDATE
SET default_value = excluded.default_value, kind = excluded.kind, min_value = excluded.min_value,
    max_value = excluded.max_value, description = excluded.description
WHERE (s.default_value, s.kind, s.min_value, s.max_value, s.description)
      IS DISTINCT FROM (excluded.default_value, excluded.kind, excluded.min_value, excluded.max_value, excluded.description);

-------------------------------------------------------------------------------
-- _check_limit: p_limit must be within 1..1000 (22023 otherwise)
CREATE OR REPLACE FUNCTION feed._check_limit(p_limit integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        PERFORM feed._bad_argument('p_limit', format('must be between 1 and 1000, got %s', coalesce(p_limit::text, 'null')));
    END IF;
END
$func$;

-------------------------------------------------------------------------------
-- _nearest_eligible: the posts nearest to an embedding by cosine similarity
-- (1 - cosine distance) that an anonymous viewer may see (contract §4.1: not
-- deleted, public, media ready, not over max_duration_ms), through the HNSW
-- index of feed.post_embeddings, each candidate checked against its post row
-- in index order. The iterative scan keeps walking the index until p_limit
-- posts pass (bounded by hnsw.max_scan_tuples, 20000 index tuples by
-- default); relaxed order is re-sorted exactly at the end. Custom plans
-- always, so the planner sees the real limit and keeps the index.
CREATE OR REPLACE FUNCTION feed._nearest_eligible(
    p_embedding @extschema:vector@.vector, p_limit integer, p_exclude_post_id bigint)
RETURNS TABLE (post_id bigint, similarity double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = relaxed_order
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_max_duration integer := feed._setting_integer('max_duration_ms');
BEGIN
    IF p_embedding IS NULL OR @extschema:vector@.vector_norm(p_embedding) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH nearest AS MATERIALIZED (
        SELECT e.post_id AS id, e.embedding OPERATOR(@extschema:vector@.<=>) p_embedding AS distance
        FROM feed.post_embeddings e
        JOIN feed.posts p ON p.post_id = e.post_id
        WHERE e.post_id IS DISTINCT FROM p_exclude_post_id
          AND NOT p.is_deleted
          AND p.visibility = 'public'
          AND p.media_ready
          AND (p.duration_ms IS NULL OR p.duration_ms <= v_max_duration)
        ORDER BY e.embedding OPERATOR(@extschema:vector@.<=>) p_embedding
        LIMIT p_limit
    )
    SELECT n.id, 1 - n.distance
    FROM nearest n
    WHERE n.distance <> 'NaN'::double precision    -- a zero vector has no direction
    ORDER BY 1 - n.distance DESC, n.id;
END
$func$;

-------------------------------------------------------------------------------
-- similar_posts: posts nearest to a post by embedding (contract §3.1)
CREATE OR REPLACE FUNCTION feed.similar_posts(p_post_id bigint, p_limit integer DEFAULT 20)
RETURNS TABLE (post_id bigint, similarity double precision)
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_embedding @extschema:vector@.vector;
BEGIN
    PERFORM feed._check_limit(p_limit);
    PERFORM feed._require_post(p_post_id);
    SELECT e.embedding INTO v_embedding FROM feed.post_embeddings e WHERE e.post_id = p_post_id;
    RETURN QUERY SELECT n.post_id, n.similarity FROM feed._nearest_eligible(v_embedding, p_limit, p_post_id) n;
END
$func$;

-------------------------------------------------------------------------------
-- _taste_candidates: posts nearest to the viewer's taste vector, with the
-- eligibility of similar_posts (the feed applies the per-viewer filters);
-- empty for a viewer without taste
CREATE OR REPLACE FUNCTION feed._taste_candidates(p_user_id bigint, p_limit integer)
RETURNS TABLE (post_id bigint, similarity double precision)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_taste @extschema:vector@.vector;
BEGIN
    PERFORM feed._check_limit(p_limit);
    SELECT t.taste INTO v_taste FROM feed.user_taste t WHERE t.user_id = p_user_id AND t.strength > 0;
    RETURN QUERY SELECT n.post_id, n.similarity FROM feed._nearest_eligible(v_taste, p_limit, NULL) n;
END
$func$;

-------------------------------------------------------------------------------
-- _taste_weights: how strongly each action pulls the taste toward the post
-- (positive) or pushes it away (negative). A view weighs its watch ratio
-- (a view without one weighs nothing); unlike weighs nothing.
CREATE OR REPLACE FUNCTION feed._taste_weights()
RETURNS TABLE (action text, weight double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    VALUES ('view', 1.0::double precision), ('like', 1.0), ('comment', 1.5), ('share', 2.0),
           ('save', 1.5), ('praise', 1.5), ('trophy', 2.0), ('gift', 2.5), ('tip', 2.5),
           ('not_interested', -1.0), ('dislike', -1.5), ('report', -2.0)
$func$;

-------------------------------------------------------------------------------
-- _taste_step: one step of the taste moving average. The state is the
-- unnormalized average T = taste * strength; a signal of signed step a
-- (|a| = min(taste_alpha * |weight|, 0.9)) on a post with unit embedding e:
--     T' = (1 - |a|) * T + a * e
-- and the new state is (taste = T' / |T'|, strength = |T'|). taste stays a
-- unit vector; strength in [0, 1] grows toward 1 while engagement keeps
-- pointing the same way and shrinks when it disagrees. When the signals
-- cancel out (|T'| <= 1e-6) taste is the zero vector and strength 0: readers
-- must require strength > 0 (cosine with a zero vector is NaN). T is linear
-- in the signals, so feed._rebuild_taste_vectors can compute it in closed form.
CREATE OR REPLACE FUNCTION feed._taste_step(
    p_taste @extschema:vector@.vector, p_strength double precision,
    p_unit @extschema:vector@.vector, p_step double precision,
    OUT taste @extschema:vector@.vector, OUT strength double precision)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_dims integer := @extschema:vector@.vector_dims(p_unit);
    v_next @extschema:vector@.vector;
BEGIN
    v_next := p_unit OPERATOR(@extschema:vector@.*) array_fill(p_step::real, ARRAY[v_dims])::@extschema:vector@.vector;
    IF p_taste IS NOT NULL AND coalesce(p_strength, 0) > 0 THEN
        v_next := p_taste OPERATOR(@extschema:vector@.*) array_fill((p_strength * (1 - abs(p_step)))::real, ARRAY[v_dims])::@extschema:vector@.vector
                  OPERATOR(@extschema:vector@.+) v_next;
    END IF;
    strength := @extschema:vector@.vector_norm(v_next);
    IF strength > 1e-6 THEN
        taste := @extschema:vector@.l2_normalize(v_next);
    ELSE
        -- the signals cancelled out (a gift, then a report of the same post):
        -- no direction left, stored as the zero vector with strength 0
        taste := array_fill(0::real, ARRAY[v_dims])::@extschema:vector@.vector;
        strength := 0;
    END IF;
END
$func$;

DROP FUNCTION IF EXISTS feed._update_taste(bigint, bigint, text, double precision, timestamptz);  -- now given taste_alpha
-------------------------------------------------------------------------------
-- _update_taste: move the viewer's taste vector after one action (called by
-- _apply_interaction for every logged action, with the taste_alpha setting).
-- Positive acts pull it toward the post's embedding, not_interested /
-- dislike / report push it away; a negative act before the viewer's first
-- positive one, a post without embedding, and a zero weight (unlike, a view
-- without watch ratio) do nothing. One read (weight, the post's unit
-- embedding, the viewer's current taste), one step, one write: the caller
-- holds the viewer lock, so nothing moves the taste in between.
CREATE OR REPLACE FUNCTION feed._update_taste(
    p_user_id bigint, p_post_id bigint, p_action text, p_watch_ratio double precision, p_now timestamptz,
    p_taste_alpha double precision)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_weight double precision;
    v_step double precision;
    v_unit @extschema:vector@.vector;
    v_taste @extschema:vector@.vector;
    v_strength double precision;
    v_next record;
BEGIN
    SELECT w.weight * CASE WHEN w.action = 'view' THEN coalesce(p_watch_ratio, 0) ELSE 1 END INTO v_weight
    FROM feed._taste_weights() w WHERE w.action = p_action;
    IF coalesce(v_weight, 0) = 0 THEN
        RETURN;
    END IF;
    v_step := sign(v_weight) * least(p_taste_alpha * abs(v_weight), 0.9);
    IF v_step = 0 THEN
        RETURN;
    END IF;
    -- the post's own row, which the write has just read (its copy in
    -- post_embeddings, a table as large again, would be one more cold read)
    SELECT @extschema:vector@.l2_normalize(e.embedding), t.taste, t.strength INTO v_unit, v_taste, v_strength
    FROM feed.posts e
    LEFT JOIN feed.user_taste t ON t.user_id = p_user_id
    WHERE e.post_id = p_post_id;
    IF v_unit IS NULL OR @extschema:vector@.vector_norm(v_unit) = 0 THEN
        RETURN;
    END IF;
    IF v_step < 0 AND v_taste IS NULL THEN
        RETURN;  -- nothing to push away from yet
    END IF;

    v_next := feed._taste_step(v_taste, v_strength, v_unit, v_step);
    INSERT INTO feed.user_taste AS t (user_id, taste, strength, updated_at)
    VALUES (p_user_id, v_next.taste, v_next.strength, p_now)
    ON CONFLICT (user_id) DO UPDATE
    SET taste = excluded.taste, strength = excluded.strength, updated_at = greatest(t.updated_at, p_now);
END
$func$;

-------------------------------------------------------------------------------
-- _rebuild_taste_vectors (p_user_ids): recompute the taste vectors of some
-- viewers (NULL: all) from feed.interactions as the sequence of _update_taste
-- calls (ordered by created_at, interaction_id) would, with the posts'
-- current embeddings. Closed form of the moving average:
--     T = sum_i a_i e_i prod_{j>i} (1 - |a_j|)
-- signals whose remaining weight fell under 1e-9 are dropped (float
-- tolerance). Viewers left without any signal lose their row. Returns the
-- number of taste vectors written.
CREATE OR REPLACE FUNCTION feed._rebuild_taste_vectors(p_user_ids bigint[])
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_alpha double precision := feed._setting_number('taste_alpha');
    v_written integer;
BEGIN
    WITH signals AS (
        SELECT i.user_id, i.post_id, i.created_at, i.interaction_id,
               sign(w.weight) * least(v_alpha * abs(w.weight
                   * CASE WHEN w.action = 'view' THEN coalesce(i.watch_ratio, 0) ELSE 1 END), 0.9) AS step
        FROM feed.interactions i
        JOIN feed._taste_weights() w ON w.action = i.action
        WHERE (p_user_ids IS NULL OR i.user_id = ANY (p_user_ids))
          AND EXISTS (SELECT 1 FROM feed.post_embeddings e
                      WHERE e.post_id = i.post_id AND @extschema:vector@.vector_norm(e.embedding) > 0)
    ), started AS (
        -- negative signals before the viewer's first positive one do nothing
        SELECT s.*, bool_or(s.step > 0) OVER (PARTITION BY s.user_id ORDER BY s.created_at, s.interaction_id
                                              ROWS UNBOUNDED PRECEDING) AS has_taste
        FROM signals s
        WHERE s.step <> 0
    ), decayed AS (
        -- sum over later signals of ln(1 - |a_j|): how much of this one survives
        SELECT st.user_id, st.post_id, st.created_at, st.step,
               -- the same rows as "1 FOLLOWING .. UNBOUNDED FOLLOWING", framed so the running sum
               -- is incremental (a frame ending at UNBOUNDED FOLLOWING is re-summed per row)
               coalesce(sum(ln(1 - abs(st.step))) OVER (PARTITION BY st.user_id
                                                        ORDER BY st.created_at DESC, st.interaction_id DESC
                                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   AS log_survival
        FROM started st
        WHERE st.has_taste
    ), contributions AS (
        SELECT d.user_id, d.post_id, d.created_at, d.step * exp(d.log_survival) AS coefficient
        FROM decayed d
        WHERE d.log_survival > ln(1e-9)
    ), fresh AS MATERIALIZED (
        SELECT c.user_id,
               @extschema:vector@.sum(@extschema:vector@.l2_normalize(e.embedding)
                   OPERATOR(@extschema:vector@.*) array_fill(c.coefficient::real, ARRAY[@extschema:vector@.vector_dims(e.embedding)])::@extschema:vector@.vector)
                   AS total,
               max(c.created_at) AS updated_at
        FROM contributions c
        JOIN feed.post_embeddings e ON e.post_id = c.post_id
        GROUP BY c.user_id
    ), written AS (
        INSERT INTO feed.user_taste AS t (user_id, taste, strength, updated_at)
        SELECT f.user_id,
               CASE WHEN @extschema:vector@.vector_norm(f.total) > 1e-6 THEN @extschema:vector@.l2_normalize(f.total)
                    ELSE array_fill(0::real, ARRAY[@extschema:vector@.vector_dims(f.total)])::@extschema:vector@.vector END,
               CASE WHEN @extschema:vector@.vector_norm(f.total) > 1e-6 THEN @extschema:vector@.vector_norm(f.total) ELSE 0 END,
               f.updated_at
        FROM fresh f
        ORDER BY f.user_id
        ON CONFLICT (user_id) DO UPDATE
        SET taste = excluded.taste, strength = excluded.strength, updated_at = excluded.updated_at
        RETURNING t.user_id
    ), removed AS (
        DELETE FROM feed.user_taste t
        WHERE (p_user_ids IS NULL OR t.user_id = ANY (p_user_ids))
          AND NOT EXISTS (SELECT 1 FROM fresh f WHERE f.user_id = t.user_id)
    )
    SELECT count(*) INTO v_written FROM written;
    RETURN v_written;
END
$func$;

-------------------------------------------------------------------------------
-- _rebuild_taste_vectors: every viewer's taste vector (after a bulk load)
CREATE OR REPLACE FUNCTION feed._rebuild_taste_vectors()
RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT feed._rebuild_taste_vectors(NULL::bigint[])
$func$;

-------------------------------------------------------------------------------
-- _positive_actions: acts that count as a positive signal for collaborative
-- filtering (besides a view whose watch ratio reaches
-- recommendation_min_watch_ratio). A like undone by an unlike does not count.
CREATE OR REPLACE FUNCTION feed._positive_actions()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT ARRAY['like', 'comment', 'share', 'save', 'praise', 'trophy', 'gift', 'tip']
$func$;

-------------------------------------------------------------------------------
-- _regression_system: for _regression_neighbors, each target's system matrix
-- G_NN + lambda I in pg_temp._rec_system, one row (a vector over the inputs in
-- position order) per input. Sum over targets of |N(j)|^2 lookups of pair
-- counts: hash joins (one pass over pg_temp._rec_pairs), never an index probe
-- per lookup, which costs several times more at these row counts.
CREATE OR REPLACE FUNCTION feed._regression_system(p_lambda double precision)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off
SET enable_mergejoin = off
AS $func$
BEGIN
    CREATE TEMP TABLE _rec_system ON COMMIT DROP AS
    SELECT a.target, a.position,
           array_agg(CASE WHEN b.position = a.position THEN a.viewers + p_lambda
                          ELSE coalesce(g.together, 0) END ORDER BY b.position)::real[]::@extschema:vector@.vector
               AS coefficients
    FROM pg_temp._rec_inputs a
    JOIN pg_temp._rec_inputs b ON b.target = a.target
    LEFT JOIN pg_temp._rec_pairs g ON g.post_id = a.input AND g.neighbor_id = b.input
    GROUP BY a.target, a.position;
    CREATE INDEX ON pg_temp._rec_system (target);
    ANALYZE pg_temp._rec_system;
END
$func$;

-------------------------------------------------------------------------------
-- _regression_entries: the entries of the regression's systems when every
-- target keeps at most p_cap inputs, from the histogram of input counts
-- (p_targets[k] targets have p_sizes[k] inputs)
CREATE OR REPLACE FUNCTION feed._regression_entries(p_sizes integer[], p_targets bigint[], p_cap integer)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT coalesce(sum(h.targets * least(h.size, p_cap)::bigint * least(h.size, p_cap)), 0)::bigint
    FROM unnest(p_sizes, p_targets) AS h (size, targets)
$func$;

-------------------------------------------------------------------------------
-- _regression_neighbors: the neighbour weights of a full build_recommendations
-- run when recommendation_regularization (lambda) is above 0; reads
-- pg_temp._rec_pairable, fills pg_temp._rec_neighbors, returns its row count.
--
-- A sparse EASE (Steck 2019, restricted to a neighbourhood per post): for
-- every target post j that anybody may see, its inputs N(j) are the p_inputs
-- posts i with the highest similarity sim(i, j) (the item-KNN formula of
-- build_recommendations), and its weights w(i, j) over them solve the ridge
-- regression of "viewer engaged with j" on "viewer engaged with i":
--     (G_NN + lambda I) w = G_Nj
-- G = the co-occurrence counts (G_ii = viewers of i, G_ik = viewers of both;
-- pairs under recommendation_min_support count as 0), all over the
-- histories that count in co-occurrence. Unlike similarities, the weights
-- discount inputs that say the same thing (two sequels of one film), and can
-- be negative. Solved for all targets at once by p_steps conjugate-gradient
-- steps, each target's system held as one pgvector row per input. Every
-- input keeps its p_inputs largest weights (bounds live scoring's fan-out).
-- Costs: the co-occurrence pass as item KNN (in the same hash buckets, by
-- target), plus sum over targets of |N(j)|^2 for the systems (their
-- entries), dominated by the targets with most inputs, the popular posts.
-- When the entries would exceed p_budget, every target keeps only its
-- input_cap most similar inputs, the largest cap whose entries fit; targets
-- with fewer inputs are unchanged. Returns the weights written, that cap
-- (the most inputs any target has when the budget holds), the entries
-- solved and those the uncapped systems would have had.
DROP FUNCTION IF EXISTS feed._regression_neighbors(integer, integer, integer, double precision, double precision,
    double precision, integer);   -- now given the budget, and reports the cap
CREATE OR REPLACE FUNCTION feed._regression_neighbors(
    p_buckets integer, p_inputs integer, p_min_support integer, p_popularity_exponent double precision,
    p_shrinkage double precision, p_lambda double precision, p_steps integer, p_budget bigint,
    OUT rows_written bigint, OUT input_cap integer, OUT system_entries bigint, OUT uncapped_entries bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
AS $func$
DECLARE
    v_sizes integer[];
    v_targets bigint[];
    v_low integer;
    v_high integer;
    v_middle integer;
BEGIN
    -- every co-occurring pair (both orders), and each target's inputs
    CREATE TEMP TABLE _rec_pairs (post_id bigint, neighbor_id bigint, together real) ON COMMIT DROP;
    CREATE TEMP TABLE _rec_inputs (target bigint, input bigint, position integer, together real, viewers real)
        ON COMMIT DROP;
    FOR v_bucket IN 0 .. p_buckets - 1 LOOP
        WITH pairs AS MATERIALIZED (
            -- per row of the bucket (a target), the viewer's other posts (inputs)
            SELECT t.post_id AS target, i.post_id AS input, count(*) AS together, min(i.viewers) AS viewers,
                   sum(t.weight) / (min(i.viewers) * power(min(t.viewers), p_popularity_exponent) + p_shrinkage)
                       AS similarity,
                   bool_and(t.recommendable) AS recommendable
            FROM pg_temp._rec_pairable t
            CROSS JOIN LATERAL (
                SELECT o.post_id, o.viewers FROM pg_temp._rec_pairable o
                WHERE o.user_id = t.user_id AND o.post_id <> t.post_id
                OFFSET 0
            ) i
            WHERE t.post_hash >= v_bucket::bigint * 2147483648 / p_buckets
              AND t.post_hash < (v_bucket + 1)::bigint * 2147483648 / p_buckets
            GROUP BY t.post_id, i.post_id
            HAVING count(*) >= p_min_support
        ), stored AS (
            INSERT INTO pg_temp._rec_pairs (post_id, neighbor_id, together)
            SELECT p.input, p.target, p.together FROM pairs p
        )
        INSERT INTO pg_temp._rec_inputs (target, input, position, together, viewers)
        SELECT r.target, r.input, r.position, r.together, r.viewers
        FROM (
            SELECT p.target, p.input, p.together, p.viewers,
                   row_number() OVER (PARTITION BY p.target ORDER BY p.similarity DESC, p.input) AS position
            FROM pairs p WHERE p.recommendable
        ) r
        WHERE r.position <= p_inputs;
    END LOOP;

    -- the budget: entries(cap) = sum over targets of min(|N(j)|, cap)^2 grows
    -- with the cap; the largest cap within p_budget, by bisection over the
    -- histogram of input counts
    SELECT coalesce(array_agg(c.n ORDER BY c.n), '{}'), coalesce(array_agg(c.targets ORDER BY c.n), '{}')
    INTO v_sizes, v_targets
    FROM (SELECT x.n, count(*) AS targets
          FROM (SELECT count(*)::integer AS n FROM pg_temp._rec_inputs GROUP BY target) x
          GROUP BY x.n) c;
    input_cap := coalesce(v_sizes[cardinality(v_sizes)], p_inputs);
    uncapped_entries := feed._regression_entries(v_sizes, v_targets, input_cap);
    IF uncapped_entries > p_budget THEN
        v_low := 1;            -- the answer, or 1 when even a single input each is over
        v_high := input_cap;   -- over the budget
        WHILE v_high - v_low > 1 LOOP
            v_middle := (v_low + v_high) / 2;
            IF feed._regression_entries(v_sizes, v_targets, v_middle) > p_budget THEN
                v_high := v_middle;
            ELSE
                v_low := v_middle;
            END IF;
        END LOOP;
        input_cap := v_low;
        DELETE FROM pg_temp._rec_inputs i WHERE i.position > input_cap;
    END IF;
    system_entries := feed._regression_entries(v_sizes, v_targets, input_cap);
    CREATE INDEX ON pg_temp._rec_inputs (target, position);
    ANALYZE pg_temp._rec_pairs;
    ANALYZE pg_temp._rec_inputs;

    PERFORM feed._regression_system(p_lambda);
    DROP TABLE pg_temp._rec_pairs;

    -- conjugate gradients from w = 0: residual r = G_Nj - A w, direction d, rr = r.r
    CREATE TEMP TABLE _rec_solution ON COMMIT DROP AS
    SELECT s.target, s.g AS w, s.g AS r, s.g AS d, rr, rr AS rr0
    FROM (
        SELECT i.target, array_agg(i.together ORDER BY i.position)::real[]::@extschema:vector@.vector AS g
        FROM pg_temp._rec_inputs i GROUP BY i.target
    ) s
    CROSS JOIN LATERAL (SELECT @extschema:vector@.inner_product(s.g, s.g) AS rr) n;
    UPDATE pg_temp._rec_solution SET w = w OPERATOR(@extschema:vector@.-) w;
    CREATE UNIQUE INDEX ON pg_temp._rec_solution (target);
    ANALYZE pg_temp._rec_solution;

    FOR v_step IN 1 .. p_steps LOOP
        WITH product AS (
            -- A d, one inner product per row of the system
            SELECT s.target,
                   array_agg(@extschema:vector@.inner_product(s.coefficients, c.d) ORDER BY s.position)::real[]
                       ::@extschema:vector@.vector AS ad
            FROM pg_temp._rec_system s
            JOIN pg_temp._rec_solution c ON c.target = s.target
            WHERE c.rr > c.rr0 * 1e-10
            GROUP BY s.target
        ), moved AS (
            SELECT c.target, c.w, c.r, c.d, c.rr, q.ad,
                   c.rr / @extschema:vector@.inner_product(c.d, q.ad) AS alpha
            FROM pg_temp._rec_solution c
            JOIN product q ON q.target = c.target
            WHERE @extschema:vector@.inner_product(c.d, q.ad) > 0
        ), next AS (
            SELECT m.target, m.d, m.rr,
                   m.w OPERATOR(@extschema:vector@.+) (m.d OPERATOR(@extschema:vector@.*)
                       array_fill(m.alpha::real, ARRAY[@extschema:vector@.vector_dims(m.d)])::@extschema:vector@.vector) AS w,
                   m.r OPERATOR(@extschema:vector@.-) (m.ad OPERATOR(@extschema:vector@.*)
                       array_fill(m.alpha::real, ARRAY[@extschema:vector@.vector_dims(m.d)])::@extschema:vector@.vector) AS r
            FROM moved m
        )
        UPDATE pg_temp._rec_solution c
        SET w = n.w, r = n.r, rr = n.rr_next,
            d = n.r OPERATOR(@extschema:vector@.+) (n.d OPERATOR(@extschema:vector@.*)
                array_fill((n.rr_next / n.rr)::real, ARRAY[@extschema:vector@.vector_dims(n.d)])::@extschema:vector@.vector)
        FROM (SELECT x.*, @extschema:vector@.inner_product(x.r, x.r) AS rr_next FROM next x) n
        WHERE n.target = c.target;
    END LOOP;

    -- the weights, each input keeping its p_inputs largest
    INSERT INTO pg_temp._rec_neighbors (post_id, neighbor_id, score)
    SELECT k.input, k.target, k.weight
    FROM (
        SELECT i.input, i.target, x.weight,
               row_number() OVER (PARTITION BY i.input ORDER BY x.weight DESC, i.target) AS rank
        FROM pg_temp._rec_solution c
        CROSS JOIN LATERAL unnest(c.w::real[]) WITH ORDINALITY AS x (weight, position)
        JOIN pg_temp._rec_inputs i ON i.target = c.target AND i.position = x.position
        WHERE x.weight <> 0
    ) k
    WHERE k.rank <= p_inputs;
    GET DIAGNOSTICS rows_written = ROW_COUNT;
END
$func$;

-------------------------------------------------------------------------------
-- _in_citus_metadata: whether a table is distributed or a reference table on
-- a Citus cluster (false without Citus). Some maintenance a single server
-- does in-line cannot be done that way on such a table. Read at run time
-- through dynamic SQL: the Citus catalog exists only where Citus is installed.
CREATE OR REPLACE FUNCTION feed._in_citus_metadata(p_table regclass)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_found boolean;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = $1)'
        INTO v_found USING p_table;
    RETURN v_found;
END
$func$;

-------------------------------------------------------------------------------
-- build_recommendations (p_lookback, p_only_changed): batch item-to-item
-- collaborative filtering (contract §3.3, seeds 002 and 003); returns the
-- number of recommendations written.
--
-- Signals: a viewer's positive (viewer, post) pairs within p_lookback: like
-- (unless undone by unlike), comment, share, save, praise, trophy, gift, tip,
-- and views with watch ratio >= recommendation_min_watch_ratio; hidden posts
-- never count. Only a viewer's most recent recommendation_pair_history
-- positive posts count in co-occurrence (pairs cost the square of a history
-- and a very long one says little more), and the most recent
-- recommendation_history are expanded into recommendations.
--
-- Full run (p_only_changed = false): item neighbours from co-occurrence,
-- weighted like RP3beta (a random walk post -> viewer -> post, with the
-- target's popularity divided out):
--     sim(i, j) = sum over viewers u with i and j of n_u^-g
--                 / (n_i * n_j^b + recommendation_shrinkage)
-- n_u = the viewer's history size (at most recommendation_pair_history), n_i
-- = viewers of i, g = recommendation_history_exponent, b =
-- recommendation_popularity_exponent. Long histories weigh less per pair;
-- popular neighbours are damped so they do not dominate every list. Pairs
-- need recommendation_min_support viewers in common, and only posts anybody
-- may see (contract §4.1) become neighbours. The top recommendation_neighbors
-- per post replace feed.item_neighbors; co-occurrences are aggregated in hash
-- buckets of posts (about a million pairs each) so memory stays bounded. With
-- recommendation_regularization above 0 (the default, 100) the weights are
-- those of feed._regression_neighbors instead (a sparse EASE over the same
-- pairs); 0 keeps the similarities (item KNN).
-- Then every viewer's candidates are the neighbours of their history,
-- scored by the sum of similarities, each weighted by r^-e for the viewer's
-- r-th most recent positive post (e = recommendation_recency_exponent: what
-- a viewer engages with next follows their latest taste), without posts they ever interacted
-- with, hidden posts and their own posts; the best recommendations_per_user
-- are stored with score / (viewer's best score), so each viewer's best is
-- 1.0, explanation {"because": [up to 3 of the viewer's posts that
-- contributed most], "raw_score": sum of similarities}, expiring after
-- recommendation_ttl. Viewers are scored 2000 per statement. MovieLens 100K
-- figures: docs/evaluation.md.
--
-- Incremental run (p_only_changed = true): keeps feed.item_neighbors and
-- rescores only viewers with an interaction since the previous run (minus one
-- minute, for writes that committed late); without a previous run or
-- neighbours it is a full run.
--
-- Safe while the feed serves: everything is replaced with row-level DELETE
-- and INSERT in this transaction (readers keep the old rows until commit, no
-- table lock beyond ROW EXCLUSIVE); one build at a time (advisory lock).
CREATE OR REPLACE FUNCTION feed.build_recommendations(p_lookback interval, p_only_changed boolean)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_custom_plan
SET work_mem = '256MB'
AS $func$
DECLARE
    v_now timestamptz := now();
    v_positive text[] := feed._positive_actions();
    v_min_ratio double precision := feed._setting_number('recommendation_min_watch_ratio');
    v_history integer := greatest(feed._setting_integer('recommendation_history'), 1);
    v_pair_history integer := greatest(feed._setting_integer('recommendation_pair_history'), 1);
    v_history_exponent double precision := feed._setting_number('recommendation_history_exponent');
    v_recency_exponent double precision := feed._setting_number('recommendation_recency_exponent');
    v_popularity_exponent double precision := feed._setting_number('recommendation_popularity_exponent');
    v_shrinkage double precision := feed._setting_number('recommendation_shrinkage');
    v_neighbors integer := greatest(feed._setting_integer('recommendation_neighbors'), 1);
    v_min_support integer := greatest(feed._setting_integer('recommendation_min_support'), 1);
    v_per_user integer := greatest(feed._setting_integer('recommendations_per_user'), 1);
    v_regularization double precision := feed._setting_number('recommendation_regularization');
    v_regression_steps integer := greatest(feed._setting_integer('recommendation_regression_steps'), 1);
    v_regression_budget bigint := greatest(feed._setting_integer('recommendation_regression_budget'), 1);
    v_input_cap integer;
    v_system_entries bigint;
    v_uncapped_entries bigint;
    v_ttl interval := feed._setting_interval('recommendation_ttl');
    v_max_duration integer := feed._setting_integer('max_duration_ms');
    v_pairs_per_bucket constant double precision := 1e6;
    v_users_per_batch constant integer := 2000;
    v_last_run timestamptz;
    v_incremental boolean;
    v_changed bigint[];
    v_users bigint[];
    v_batch bigint[];
    v_pairs double precision;
    v_buckets integer := 1;
    v_neighbor_rows bigint := 0;
    v_written bigint := 0;
    v_count bigint;
    v_offset integer := 1;
    v_table text;
    v_algorithm text := CASE WHEN v_regularization > 0 THEN 'regression' ELSE 'itemknn' END;
BEGIN
    PERFORM feed._check_interval('p_lookback', p_lookback, interval '100 years');
    IF p_only_changed IS NULL THEN
        PERFORM feed._bad_argument('p_only_changed', 'must not be null');
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('feed.build_recommendations', 0));

    SELECT j.last_run_at INTO v_last_run FROM feed.job_runs j WHERE j.job = 'build_recommendations';
    v_incremental := p_only_changed AND v_last_run IS NOT NULL AND EXISTS (SELECT 1 FROM feed.item_neighbors);
    IF v_incremental THEN
        SELECT coalesce(array_agg(DISTINCT i.user_id), '{}') INTO v_changed
        FROM feed.interactions i WHERE i.created_at > v_last_run - interval '1 minute';
    END IF;

    -- scratch tables of a previous call in this transaction
    FOREACH v_table IN ARRAY ARRAY['_rec_history', '_rec_unavailable', '_rec_items', '_rec_pairable', '_rec_neighbors',
                                 '_rec_pairs', '_rec_inputs', '_rec_system', '_rec_solution'] LOOP
        IF to_regclass('pg_temp.' || v_table) IS NOT NULL THEN
            EXECUTE format('DROP TABLE pg_temp.%I', v_table);
        END IF;
    END LOOP;

    -- the positive history: (viewer, post), at most v_history per viewer, most recent first
    CREATE TEMP TABLE _rec_history ON COMMIT DROP AS
    WITH pairs AS (
        SELECT i.user_id, i.post_id, max(i.created_at) AS last_at
        FROM feed.interactions i
        WHERE i.created_at > v_now - p_lookback
          AND (i.action = ANY (v_positive) OR i.action = 'unlike'
               OR (i.action = 'view' AND i.watch_ratio >= v_min_ratio))
          AND (v_changed IS NULL OR i.user_id = ANY (v_changed))
        GROUP BY i.user_id, i.post_id
        HAVING bool_or(i.action NOT IN ('like', 'unlike'))
            OR sum(CASE i.action WHEN 'like' THEN 1 WHEN 'unlike' THEN -1 ELSE 0 END) > 0
    ), ranked AS (
        SELECT p.user_id, p.post_id,
               row_number() OVER w AS recency, count(*) OVER (PARTITION BY p.user_id) AS total
        FROM pairs p
        -- an anti-join written as a join: Citus refuses a correlated subquery
        -- over a CTE when it cannot push the whole statement to the shards
        LEFT JOIN feed.hidden_posts h ON h.user_id = p.user_id AND h.post_id = p.post_id
        WHERE h.user_id IS NULL
        WINDOW w AS (PARTITION BY p.user_id ORDER BY p.last_at DESC, p.post_id DESC)
    )
    SELECT r.user_id, r.post_id, r.recency, r.total
    FROM ranked r WHERE r.recency <= greatest(v_history, v_pair_history);
    CREATE INDEX ON pg_temp._rec_history (user_id);
    ANALYZE pg_temp._rec_history;

    -- posts nobody may see now (contract §4.1): never recommended
    CREATE TEMP TABLE _rec_unavailable ON COMMIT DROP AS
    SELECT p.post_id FROM feed.posts p
    WHERE p.is_deleted OR p.visibility <> 'public' OR NOT p.media_ready OR p.duration_ms > v_max_duration;
    CREATE UNIQUE INDEX ON pg_temp._rec_unavailable (post_id);
    ANALYZE pg_temp._rec_unavailable;

    IF NOT v_incremental THEN
        -- viewers per post, among the histories that count in co-occurrence
        CREATE TEMP TABLE _rec_items ON COMMIT DROP AS
        SELECT h.post_id, count(*)::double precision AS viewers
        FROM pg_temp._rec_history h WHERE h.recency <= v_pair_history
        GROUP BY h.post_id;
        CREATE UNIQUE INDEX ON pg_temp._rec_items (post_id);
        ANALYZE pg_temp._rec_items;

        -- what pairs: a post with fewer viewers than v_min_support cannot reach it
        -- with anyone; only posts anybody may see become neighbours
        CREATE TEMP TABLE _rec_pairable ON COMMIT DROP AS
        SELECT h.user_id, h.post_id, (hashint8(h.post_id) & 2147483647) AS post_hash, i.viewers,
               power(least(h.total, v_pair_history)::double precision, -v_history_exponent) AS weight,
               p.post_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_temp._rec_unavailable u WHERE u.post_id = h.post_id)
                   AS recommendable
        FROM pg_temp._rec_history h
        JOIN pg_temp._rec_items i ON i.post_id = h.post_id
        LEFT JOIN feed.posts p ON p.post_id = h.post_id
        WHERE h.recency <= v_pair_history AND i.viewers >= v_min_support;
        CREATE INDEX ON pg_temp._rec_pairable (user_id);
        CREATE INDEX ON pg_temp._rec_pairable (post_hash);
        ANALYZE pg_temp._rec_pairable;

        -- about v_pairs_per_bucket co-occurrences aggregated per statement
        SELECT sum(c.n * c.n) INTO v_pairs
        FROM (SELECT count(*)::double precision AS n FROM pg_temp._rec_pairable h GROUP BY h.user_id) c;
        v_buckets := greatest(1, ceil(coalesce(v_pairs, 0) / v_pairs_per_bucket))::integer;

        -- built in a scratch table first: scoring below then reads clean rows, not
        -- an index that also holds the previous run's rows deleted by this transaction
        CREATE TEMP TABLE _rec_neighbors (post_id bigint, neighbor_id bigint, score double precision)
            ON COMMIT DROP;
        IF v_regularization > 0 THEN
            SELECT r.rows_written, r.input_cap, r.system_entries, r.uncapped_entries
            INTO v_neighbor_rows, v_input_cap, v_system_entries, v_uncapped_entries
            FROM feed._regression_neighbors(v_buckets, v_neighbors, v_min_support, v_popularity_exponent,
                v_shrinkage, v_regularization, v_regression_steps, v_regression_budget) r;
        END IF;
        FOR v_bucket IN 0 .. CASE WHEN v_regularization > 0 THEN -1 ELSE v_buckets - 1 END LOOP
            INSERT INTO pg_temp._rec_neighbors (post_id, neighbor_id, score)
            SELECT s.post_id, s.neighbor_id, s.score
            FROM (
                SELECT c.post_id, c.neighbor_id, c.score,
                       row_number() OVER (PARTITION BY c.post_id ORDER BY c.score DESC, c.neighbor_id) AS rank
                FROM (
                    -- per row of the bucket, the viewer's other posts: index scans, never a
                    -- pass over a whole table, so the cost stays linear in the number of pairs
                    SELECT a.post_id, b.post_id AS neighbor_id,
                           sum(a.weight) / (min(a.viewers) * power(min(b.viewers), v_popularity_exponent) + v_shrinkage)
                               AS score
                    FROM pg_temp._rec_pairable a
                    CROSS JOIN LATERAL (
                        SELECT o.post_id, o.viewers FROM pg_temp._rec_pairable o
                        WHERE o.user_id = a.user_id AND o.post_id <> a.post_id AND o.recommendable
                        OFFSET 0
                    ) b
                    WHERE a.post_hash >= v_bucket::bigint * 2147483648 / v_buckets
                      AND a.post_hash < (v_bucket + 1)::bigint * 2147483648 / v_buckets
                    GROUP BY a.post_id, b.post_id
                    HAVING count(*) >= v_min_support
                ) c
            ) s
            WHERE s.rank <= v_neighbors;
            GET DIAGNOSTICS v_count = ROW_COUNT;
            v_neighbor_rows := v_neighbor_rows + v_count;
        END LOOP;
        DELETE FROM feed.item_neighbors;
        INSERT INTO feed.item_neighbors (post_id, neighbor_id, score)
        SELECT n.post_id, n.neighbor_id, n.score FROM pg_temp._rec_neighbors n ORDER BY n.post_id, n.neighbor_id;
        -- fresh statistics for the feeds' reads of the new neighbours. Not on a
        -- Citus reference table: the insert above wrote the coordinator's copy
        -- locally, after which Citus refuses the ANALYZE (it needs connections
        -- of its own to every copy); each node's autovacuum analyzes its copy
        IF NOT feed._in_citus_metadata('feed.item_neighbors') THEN
            ANALYZE feed.item_neighbors;
        END IF;
        DELETE FROM feed.recommendations;
    ELSE
        -- the stored neighbours of the posts these viewers' histories hold,
        -- without those nobody may see any more (a full run's neighbours are
        -- all available). Filtered here rather than as a candidate check that
        -- depends on the mode: on Citus that check, a correlated subquery on a
        -- temporary table under a parameter, made the insert below write nothing
        CREATE TEMP TABLE _rec_neighbors ON COMMIT DROP AS
        SELECT n.post_id, n.neighbor_id, n.score FROM feed.item_neighbors n
        WHERE n.post_id IN (SELECT h.post_id FROM pg_temp._rec_history h WHERE h.recency <= v_history)
          AND NOT EXISTS (SELECT 1 FROM pg_temp._rec_unavailable u WHERE u.post_id = n.neighbor_id);
        DELETE FROM feed.recommendations r WHERE r.user_id = ANY (v_changed);
    END IF;
    CREATE INDEX ON pg_temp._rec_neighbors (post_id);
    ANALYZE pg_temp._rec_neighbors;

    -- per-viewer recommendations, v_users_per_batch viewers per statement; the
    -- history is read in viewer order so the ordered aggregate needs only a
    -- small sort per viewer
    SELECT coalesce(array_agg(DISTINCT h.user_id ORDER BY h.user_id), '{}') INTO v_users FROM pg_temp._rec_history h;
    WHILE v_offset <= cardinality(v_users) LOOP
        v_batch := v_users[v_offset : v_offset + v_users_per_batch - 1];
        INSERT INTO feed.recommendations (user_id, post_id, score, algorithm, explanation, generated_at, expires_at)
        WITH candidates AS (
            SELECT h.user_id, n.neighbor_id AS post_id,
                   sum(n.score * power(h.recency::double precision, -v_recency_exponent)) AS score,
                   (array_agg(h.post_id ORDER BY n.score * power(h.recency::double precision, -v_recency_exponent) DESC,
                                                 h.post_id))[1:3] AS because
            FROM pg_temp._rec_history h
            -- index scans per history row: a batch never reads all the neighbours
            CROSS JOIN LATERAL (
                SELECT i.neighbor_id, i.score FROM pg_temp._rec_neighbors i WHERE i.post_id = h.post_id OFFSET 0
            ) n
            WHERE h.user_id = ANY (v_batch)
              AND h.recency <= v_history
            GROUP BY h.user_id, n.neighbor_id
        ), touched AS (
            SELECT DISTINCT i.user_id, i.post_id FROM feed.interactions i
            WHERE i.user_id = ANY (v_batch)
        ), hidden AS (
            SELECT hp.user_id, hp.post_id FROM feed.hidden_posts hp
            WHERE hp.user_id = ANY (v_batch)
        ), own AS (
            SELECT p.author_id AS user_id, p.post_id FROM feed.posts p
            WHERE p.author_id = ANY (v_batch)
        ), kept AS (
            SELECT c.user_id, c.post_id, c.score, c.because,
                   row_number() OVER (PARTITION BY c.user_id ORDER BY c.score DESC, c.post_id) AS rank,
                   max(c.score) OVER (PARTITION BY c.user_id) AS best
            FROM candidates c
            WHERE NOT EXISTS (SELECT 1 FROM own o WHERE o.user_id = c.user_id AND o.post_id = c.post_id)
              AND NOT EXISTS (SELECT 1 FROM touched t WHERE t.user_id = c.user_id AND t.post_id = c.post_id)
              AND NOT EXISTS (SELECT 1 FROM hidden x WHERE x.user_id = c.user_id AND x.post_id = c.post_id)
        )
        SELECT k.user_id, k.post_id, k.score / k.best, v_algorithm,
               jsonb_build_object('because', to_jsonb(k.because), 'raw_score', k.score),
               v_now, v_now + v_ttl
        FROM kept k
        WHERE k.rank <= v_per_user AND k.best > 0 AND k.score > 0;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_written := v_written + v_count;
        v_offset := v_offset + v_users_per_batch;
    END LOOP;

    PERFORM feed._record_job_run('build_recommendations', v_now, jsonb_build_object(
        'mode', CASE WHEN v_incremental THEN 'incremental' ELSE 'full' END,
        'lookback', p_lookback::text,
        'viewers', cardinality(v_users),
        'recommendations', v_written,
        'neighbors', CASE WHEN v_incremental THEN NULL ELSE v_neighbor_rows END,
        'buckets', CASE WHEN v_incremental THEN NULL ELSE v_buckets END,
        'regression_inputs', v_input_cap,
        'regression_entries', v_system_entries,
        'regression_uncapped_entries', v_uncapped_entries,
        'seconds', round(extract(epoch FROM clock_timestamp() - v_now)::numeric, 3)));
    RETURN v_written;
END
$func$;

-------------------------------------------------------------------------------
-- build_recommendations: the contract's form (contract §3.3), a full run
CREATE OR REPLACE FUNCTION feed.build_recommendations(p_lookback interval DEFAULT '30 days')
RETURNS integer
LANGUAGE sql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT feed.build_recommendations(p_lookback, false)
$func$;

-------------------------------------------------------------------------------
-- _live_collaborative: bounded live scoring from feed.item_neighbors for a
-- viewer without fresh precomputed recommendations (precomputed,
-- then live, then fallback). Expands the viewer's live_collaborative_history
-- most recent positive posts (found among their latest interactions) with the
-- same rules, recency weights and exclusions as build_recommendations; score / best (best =
-- 1.0); because = up to 3 of those posts that contributed most.
CREATE OR REPLACE FUNCTION feed._live_collaborative(p_user_id bigint, p_limit integer)
RETURNS TABLE (post_id bigint, score double precision, because bigint[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    v_recent integer := greatest(feed._setting_integer('live_collaborative_history'), 1);
    v_recency_exponent double precision := feed._setting_number('recommendation_recency_exponent');
    v_positive text[] := feed._positive_actions();
    v_min_ratio double precision := feed._setting_number('recommendation_min_watch_ratio');
    v_max_duration integer := feed._setting_integer('max_duration_ms');
BEGIN
    PERFORM feed._check_limit(p_limit);
    IF p_user_id IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH latest AS (
        SELECT i.post_id AS id, i.action, i.watch_ratio, i.created_at
        FROM feed.interactions i
        WHERE i.user_id = p_user_id
        ORDER BY i.created_at DESC
        LIMIT v_recent * 10
    ), recent AS (
        SELECT l.id, max(l.created_at) AS last_at
        FROM latest l
        WHERE (l.action = ANY (v_positive) OR l.action = 'unlike'
               OR (l.action = 'view' AND l.watch_ratio >= v_min_ratio))
          AND NOT EXISTS (SELECT 1 FROM feed.hidden_posts h WHERE h.user_id = p_user_id AND h.post_id = l.id)
        GROUP BY l.id
        HAVING bool_or(l.action NOT IN ('like', 'unlike'))
            OR sum(CASE l.action WHEN 'like' THEN 1 WHEN 'unlike' THEN -1 ELSE 0 END) > 0
        ORDER BY max(l.created_at) DESC, l.id DESC
        LIMIT v_recent
    ), ranked AS (
        SELECT r.id, power((row_number() OVER (ORDER BY r.last_at DESC, r.id DESC))::double precision,
                           -v_recency_exponent) AS weight
        FROM recent r
    ), candidates AS (
        SELECT n.neighbor_id AS id, sum(n.score * r.weight) AS raw,
               (array_agg(r.id ORDER BY n.score * r.weight DESC, r.id))[1:3] AS because
        FROM ranked r
        JOIN feed.item_neighbors n ON n.post_id = r.id
        GROUP BY n.neighbor_id
    ), kept AS (
        SELECT c.id, c.raw, c.because
        FROM candidates c
        JOIN feed.posts p ON p.post_id = c.id
        WHERE c.raw > 0   -- regression weights can be negative: only a positive sum recommends
          AND NOT p.is_deleted AND p.visibility = 'public' AND p.media_ready
          AND (p.duration_ms IS NULL OR p.duration_ms <= v_max_duration)
          AND p.author_id <> p_user_id
          AND NOT EXISTS (SELECT 1 FROM feed.interactions i WHERE i.user_id = p_user_id AND i.post_id = c.id)
          AND NOT EXISTS (SELECT 1 FROM feed.hidden_posts h WHERE h.user_id = p_user_id AND h.post_id = c.id)
    )
    SELECT k.id, k.raw / max(k.raw) OVER (), k.because
    FROM kept k
    ORDER BY k.raw DESC, k.id
    LIMIT p_limit;
END
$func$;
