-- pgfeed seed: a synthetic world for demos, benchmarks and tests.
--
-- Not applied by migrate. pgfeed.seed runs it step by step (a step starts at a
-- line "-- step: <name>") in ONE transaction, after replacing these tokens
-- with literals:
--   __SEED__ (bigint)  __USERS__  __POSTS__  __INTERACTIONS__  __IMPRESSIONS__
--   __DAYS__ (number)  __ANCHOR__ (timestamptz expression: "now" of the world)
--   __DIM__ (embedding dimension)  __EMBEDDINGS__ (true/false)
--
-- Everything is set-based and deterministic: every random choice is a hash of
-- (seed, purpose, row number) through pg_temp.seed_u, never random(), so the
-- same seed gives the same world whatever the plan or execution order.
-- Helper tables and functions live in pg_temp and vanish with the session.
--
-- The world:
--   users 1..__USERS__, ~15% of them creators with a quality in (0, 1), a main
--     category and a main post type; every user has an activity rank (Zipf:
--     a few users do most of the engaging) and three favourite categories;
--   collectives (one per ~400 users) whose members are mostly creators;
--   posts 1..__POSTS__, authored by creators with Zipf-distributed output,
--     70% in the creator's main category, 12 categories of Zipf popularity,
--     6 post types; videos and audio have a duration, ~3% of videos over the
--     180 s cap; ~0.5% shadow-banned, ~0.3% removed, ~0.5% deleted, ~1% not
--     media-ready; created_at uniform over __DAYS__ days, ~1% in the last hour;
--     embeddings = normalize(category centroid + creator style + noise);
--   follows: out-degree with a heavy tail, followees drawn Zipf from creators
--     ranked by quality, so follower counts follow a power law;
--   interactions: the actor is drawn by activity rank; the post comes from a
--     followed creator (35%), a favourite category (35%, Zipf by post
--     popularity) or the global popularity ranking (30%); engagement grows
--     with post quality and with following / favourite category; mostly
--     views and likes, rare gifts and tips (positive amounts), rare
--     not_interested / dislike / report; video views carry a watch ratio;
--     times fall after the post's creation, mostly soon after;
--   impressions: sessions of 10 posts drawn the same way;
--   blocks (~2% of users) and preferences / mutes (~12% of users).

-- step: helpers
CREATE FUNCTION pg_temp.seed_u(p_purpose integer, p_n bigint)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ((pg_catalog.hashint8extended(p_n, __SEED__::bigint * 1000003 + p_purpose) >> 11)
            & 9007199254740991)::double precision / 9007199254740992.0
$$;

-- a rank in 1..p_count, Zipf-like with exponent p_s (continuous inverse CDF)
CREATE FUNCTION pg_temp.seed_zipf(p_count bigint, p_s double precision, p_u double precision)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(1, least(p_count,
        CASE WHEN p_count <= 1 THEN 1
             WHEN p_s = 1 THEN floor(exp(p_u * ln(p_count + 1::double precision)))
             ELSE floor(power((power(p_count + 1::double precision, 1 - p_s) - 1) * p_u + 1, 1 / (1 - p_s)))
        END))::bigint
$$;

CREATE TEMP TABLE seed_categories (idx integer PRIMARY KEY, name text NOT NULL) ON COMMIT DROP;
INSERT INTO seed_categories
SELECT i, c FROM unnest(ARRAY['art', 'music', 'gaming', 'comedy', 'food', 'sports', 'travel', 'fashion',
                              'tech', 'pets', 'fitness', 'books']) WITH ORDINALITY AS t(c, i);

CREATE TEMP TABLE seed_types (idx integer PRIMARY KEY, name text NOT NULL) ON COMMIT DROP;
INSERT INTO seed_types
SELECT i, t FROM unnest(ARRAY['image', 'video', 'post', 'novel', 'audio', 'poll']) WITH ORDINALITY AS x(t, i);

-- step: users
CREATE TEMP TABLE seed_users ON COMMIT DROP AS
SELECT g AS user_id,
       (g = 1 OR pg_temp.seed_u(1, g) < 0.15) AS is_creator,
       power(pg_temp.seed_u(2, g), 0.7) AS quality,
       pg_temp.seed_zipf(12, 0.9, pg_temp.seed_u(3, g))::integer AS main_category,
       pg_temp.seed_zipf(6, 1.0, pg_temp.seed_u(4, g))::integer AS main_type,
       pg_temp.seed_zipf(12, 0.9, pg_temp.seed_u(5, g))::integer AS fav1,
       pg_temp.seed_zipf(12, 0.9, pg_temp.seed_u(6, g))::integer AS fav2,
       pg_temp.seed_zipf(12, 0.9, pg_temp.seed_u(7, g))::integer AS fav3,
       row_number() OVER (ORDER BY pg_temp.seed_u(8, g), g) AS activity_rank,
       least(__USERS__ - 1, 1000, 2 + floor(4 * power(1 - pg_temp.seed_u(9, g), -0.6)))::integer AS out_degree
FROM generate_series(1, __USERS__) AS g;
ALTER TABLE seed_users ADD PRIMARY KEY (user_id);
CREATE UNIQUE INDEX ON seed_users (activity_rank);

-- creators ranked by quality (with some luck): rank 1 is the most followed
CREATE TEMP TABLE seed_creators ON COMMIT DROP AS
SELECT u.user_id, u.quality, u.main_category, u.main_type,
       row_number() OVER (ORDER BY u.quality * 0.7 + pg_temp.seed_u(10, u.user_id) * 0.3 DESC, u.user_id)
           AS creator_rank
FROM seed_users u WHERE u.is_creator;
CREATE UNIQUE INDEX ON seed_creators (creator_rank);
ANALYZE seed_users, seed_creators;

-- step: collectives
INSERT INTO feed.collective_members (collective_id, user_id, joined_at)
SELECT DISTINCT ON (m.collective_id, m.user_id) m.collective_id, m.user_id, m.joined_at
FROM (SELECT pg_temp.seed_zipf(greatest(3, __USERS__ / 400), 1.0, pg_temp.seed_u(20 + k, u.user_id)) AS collective_id,
             u.user_id,
             __ANCHOR__ - __DAYS__ * pg_temp.seed_u(23 + k, u.user_id) * interval '1 day' AS joined_at,
             pg_temp.seed_u(25 + k, u.user_id) < CASE WHEN u.is_creator THEN 0.6 ELSE 0.2 END / k AS joins
      FROM seed_users u CROSS JOIN generate_series(1, 2) AS k) m
WHERE m.joins
ORDER BY m.collective_id, m.user_id, m.joined_at;

-- step: posts
CREATE TEMP TABLE seed_posts ON COMMIT DROP AS
WITH drawn AS (
    SELECT g AS post_id, c.user_id AS author_id, c.quality AS author_quality,
           CASE WHEN pg_temp.seed_u(31, g) < 0.7 THEN c.main_category
                ELSE pg_temp.seed_zipf(12, 0.9, pg_temp.seed_u(32, g))::integer END AS category_idx,
           CASE WHEN pg_temp.seed_u(33, g) < 0.6 THEN c.main_type
                ELSE pg_temp.seed_zipf(6, 1.0, pg_temp.seed_u(34, g))::integer END AS type_idx,
           CASE WHEN pg_temp.seed_u(35, g) < 0.01
                THEN __ANCHOR__ - pg_temp.seed_u(36, g) * interval '1 hour'
                ELSE __ANCHOR__ - __DAYS__ * pg_temp.seed_u(36, g) * interval '1 day' END AS created_at
    FROM generate_series(1, __POSTS__) AS g
    JOIN seed_creators c
      ON c.creator_rank = pg_temp.seed_zipf((SELECT count(*) FROM seed_creators), 1.05, pg_temp.seed_u(30, g))
)
SELECT d.post_id, d.author_id, d.category_idx, cat.name AS category, typ.name AS post_type, d.created_at,
       CASE typ.name
           WHEN 'video' THEN CASE WHEN pg_temp.seed_u(37, d.post_id) < 0.03
                                  THEN 180001 + floor(pg_temp.seed_u(38, d.post_id) * 420000)
                                  ELSE 3000 + floor(power(pg_temp.seed_u(38, d.post_id), 1.5) * 176000) END
           WHEN 'audio' THEN 20000 + floor(pg_temp.seed_u(38, d.post_id) * 160000)
       END::integer AS duration_ms,
       CASE WHEN pg_temp.seed_u(39, d.post_id) < 0.005 THEN 'shadow_ban'
            WHEN pg_temp.seed_u(39, d.post_id) < 0.008 THEN 'removed'
            ELSE 'public' END AS visibility,
       pg_temp.seed_u(40, d.post_id) < 0.005 AS is_deleted,
       pg_temp.seed_u(41, d.post_id) >= CASE typ.name WHEN 'video' THEN 0.03 ELSE 0.003 END AS media_ready,
       CASE WHEN pg_temp.seed_u(42, d.post_id) < 0.12
            THEN (SELECT min(m.collective_id) FROM feed.collective_members m WHERE m.user_id = d.author_id)
       END AS collective_id,
       greatest(0.0, least(1.0, d.author_quality * 0.8 + pg_temp.seed_u(43, d.post_id) * 0.4 - 0.1)) AS quality
FROM drawn d
JOIN seed_categories cat ON cat.idx = d.category_idx
JOIN seed_types typ ON typ.idx = d.type_idx;
ALTER TABLE seed_posts ADD PRIMARY KEY (post_id);

-- popularity: quality with luck; global rank, rank within the category, and
-- each author's posts newest first
CREATE TEMP TABLE seed_post_ranks ON COMMIT DROP AS
SELECT p.post_id, p.author_id, p.category_idx,
       row_number() OVER (ORDER BY p.quality * (0.3 + pg_temp.seed_u(44, p.post_id)) DESC, p.post_id) AS global_rank,
       row_number() OVER (PARTITION BY p.category_idx
                          ORDER BY p.quality * (0.3 + pg_temp.seed_u(44, p.post_id)) DESC, p.post_id) AS category_rank,
       row_number() OVER (PARTITION BY p.author_id ORDER BY p.created_at DESC, p.post_id) - 1 AS author_idx
FROM seed_posts p;
CREATE UNIQUE INDEX ON seed_post_ranks (global_rank);
CREATE UNIQUE INDEX ON seed_post_ranks (category_idx, category_rank);
CREATE UNIQUE INDEX ON seed_post_ranks (author_id, author_idx);

CREATE TEMP TABLE seed_category_sizes ON COMMIT DROP AS
SELECT c.idx AS category_idx, count(r.post_id) AS posts
FROM seed_categories c LEFT JOIN seed_post_ranks r ON r.category_idx = c.idx
GROUP BY c.idx;

CREATE TEMP TABLE seed_author_sizes ON COMMIT DROP AS
SELECT r.author_id, count(*) AS posts FROM seed_post_ranks r GROUP BY r.author_id;
ALTER TABLE seed_author_sizes ADD PRIMARY KEY (author_id);
ANALYZE seed_posts, seed_post_ranks, seed_category_sizes, seed_author_sizes;

-- step: embeddings
-- category centroids, a style per creator (1024 shared), and noise (4096 shared)
CREATE TEMP TABLE seed_vectors ON COMMIT DROP AS
SELECT v.pool, v.i,
       array_agg(((pg_temp.seed_u(50 + v.pool, v.i * 100003 + k) * 2 - 1) * v.scale)::real ORDER BY k)::vector AS v
FROM (SELECT 1 AS pool, i, 1.0 AS scale FROM generate_series(1, 12) AS i
      UNION ALL SELECT 2, i, 0.55 FROM generate_series(0, 1023) AS i
      UNION ALL SELECT 3, i, 0.35 FROM generate_series(0, 4095) AS i) v
CROSS JOIN generate_series(1, __DIM__) AS k
WHERE __EMBEDDINGS__
GROUP BY v.pool, v.i;
ALTER TABLE seed_vectors ADD PRIMARY KEY (pool, i);

-- step: insert_posts
INSERT INTO feed.posts (post_id, author_id, created_at, category, post_type, collective_id, visibility,
                        is_deleted, media_ready, duration_ms, embedding)
SELECT p.post_id, p.author_id, p.created_at, p.category, p.post_type, p.collective_id, p.visibility,
       p.is_deleted, p.media_ready, p.duration_ms,
       l2_normalize(c.v + s.v + n.v)
FROM seed_posts p
LEFT JOIN seed_vectors c ON c.pool = 1 AND c.i = p.category_idx
LEFT JOIN seed_vectors s ON s.pool = 2 AND s.i = (pg_catalog.hashint8extended(p.author_id, __SEED__) & 1023)
LEFT JOIN seed_vectors n ON n.pool = 3 AND n.i = (pg_catalog.hashint8extended(p.post_id, __SEED__ + 1) & 4095)
ORDER BY p.post_id;

-- step: follows
INSERT INTO feed.follows (follower_id, followee_id, created_at)
SELECT DISTINCT ON (f.follower_id, f.followee_id) f.follower_id, f.followee_id, f.created_at
FROM (SELECT u.user_id AS follower_id,
             CASE WHEN pg_temp.seed_u(60, u.user_id * 4096 + k) < 0.85 THEN c.user_id
                  ELSE 1 + floor(pg_temp.seed_u(62, u.user_id * 4096 + k) * __USERS__)::bigint END AS followee_id,
             __ANCHOR__ - __DAYS__ * pg_temp.seed_u(63, u.user_id * 4096 + k) * interval '1 day' AS created_at
      FROM seed_users u
      CROSS JOIN LATERAL generate_series(1, u.out_degree) AS k
      JOIN seed_creators c
        ON c.creator_rank = pg_temp.seed_zipf((SELECT count(*) FROM seed_creators), 1.0,
                                              pg_temp.seed_u(61, u.user_id * 4096 + k))) f
WHERE f.follower_id <> f.followee_id
ORDER BY f.follower_id, f.followee_id, f.created_at;

-- a viewer's followees, numbered, with how many posts each has
CREATE TEMP TABLE seed_followees ON COMMIT DROP AS
SELECT f.follower_id, row_number() OVER (PARTITION BY f.follower_id ORDER BY f.followee_id) - 1 AS idx,
       f.followee_id, coalesce(a.posts, 0) AS followee_posts
FROM feed.follows f LEFT JOIN seed_author_sizes a ON a.author_id = f.followee_id;
CREATE UNIQUE INDEX ON seed_followees (follower_id, idx);
CREATE TEMP TABLE seed_follow_counts ON COMMIT DROP AS
SELECT f.follower_id AS user_id, count(*) AS followees FROM feed.follows f GROUP BY f.follower_id;
ALTER TABLE seed_follow_counts ADD PRIMARY KEY (user_id);
ANALYZE seed_followees, seed_follow_counts;

-- step: blocks_and_preferences
INSERT INTO feed.blocks (user_id, blocked_user_id, created_at)
SELECT DISTINCT ON (b.user_id, b.blocked) b.user_id, b.blocked, b.created_at
FROM (SELECT u.user_id,
             1 + floor(pg_temp.seed_u(71, u.user_id * 8 + k) * __USERS__)::bigint AS blocked,
             __ANCHOR__ - __DAYS__ * pg_temp.seed_u(72, u.user_id * 8 + k) * interval '1 day' AS created_at
      FROM seed_users u CROSS JOIN generate_series(1, 3) AS k
      WHERE pg_temp.seed_u(70, u.user_id) < 0.02 AND k <= 1 + floor(pg_temp.seed_u(73, u.user_id) * 3)) b
WHERE b.user_id <> b.blocked
ORDER BY b.user_id, b.blocked, b.created_at;

INSERT INTO feed.user_preferences (user_id, preferred_post_types, muted_authors, muted_collectives, muted_categories)
SELECT u.user_id,
       CASE WHEN pg_temp.seed_u(75, u.user_id) < 0.6
            THEN ARRAY[(SELECT t.name FROM seed_types t WHERE t.idx = u.main_type)] ELSE '{}' END,
       CASE WHEN pg_temp.seed_u(76, u.user_id) < 0.3
            THEN ARRAY(SELECT c.user_id FROM seed_creators c
                       WHERE c.creator_rank = pg_temp.seed_zipf((SELECT count(*) FROM seed_creators), 0.8,
                                                                pg_temp.seed_u(77, u.user_id))
                         AND c.user_id <> u.user_id)
            ELSE '{}' END,
       CASE WHEN pg_temp.seed_u(78, u.user_id) < 0.1
            THEN ARRAY[pg_temp.seed_zipf(greatest(3, __USERS__ / 400), 1.0, pg_temp.seed_u(79, u.user_id))]
            ELSE '{}' END,
       CASE WHEN pg_temp.seed_u(80, u.user_id) < 0.25
            THEN ARRAY[(SELECT c.name FROM seed_categories c
                        WHERE c.idx = 13 - pg_temp.seed_zipf(12, 0.9, pg_temp.seed_u(81, u.user_id)))]
            ELSE '{}' END
FROM seed_users u
WHERE pg_temp.seed_u(74, u.user_id) < 0.12
ORDER BY u.user_id;

-- step: interactions
-- who acts, and where the post comes from (followed creator, favourite
-- category, global popularity); then what they do with it
INSERT INTO feed.interactions (user_id, post_id, action, value_amount, time_spent_seconds, created_at, watch_ratio)
WITH drawn AS (
    SELECT g, u.user_id, u.fav1, u.fav2, u.fav3,
           pg_temp.seed_u(101, g) AS source_u,
           CASE WHEN pg_temp.seed_u(102, g) < 0.6 THEN u.fav1 WHEN pg_temp.seed_u(102, g) < 0.9 THEN u.fav2
                ELSE u.fav3 END AS category_idx,
           coalesce(fc.followees, 0) AS followees
    FROM generate_series(1, __INTERACTIONS__) AS g
    JOIN seed_users u ON u.activity_rank = pg_temp.seed_zipf(__USERS__, 0.9, pg_temp.seed_u(100, g))
    LEFT JOIN seed_follow_counts fc ON fc.user_id = u.user_id
    OFFSET 0
), picked AS (
    SELECT d.g, d.user_id, d.fav1, d.fav2, d.fav3,
           coalesce(ap.post_id, cp.post_id, gp.post_id) AS post_id,
           CASE WHEN ap.post_id IS NOT NULL THEN 'following'
                WHEN cp.post_id IS NOT NULL THEN 'category' ELSE 'popular' END AS source
    FROM drawn d
    LEFT JOIN seed_followees fe
      ON d.source_u < 0.35 AND d.followees > 0
     AND fe.follower_id = d.user_id AND fe.idx = floor(pg_temp.seed_u(103, d.g) * d.followees)::bigint
    LEFT JOIN seed_post_ranks ap
      ON fe.followee_posts > 0 AND ap.author_id = fe.followee_id
     AND ap.author_idx = floor(power(pg_temp.seed_u(104, d.g), 2) * fe.followee_posts)::bigint
    LEFT JOIN seed_category_sizes cs ON d.source_u >= 0.35 AND d.source_u < 0.7 AND cs.category_idx = d.category_idx
    LEFT JOIN seed_post_ranks cp
      ON cs.posts > 0 AND cp.category_idx = cs.category_idx
     AND cp.category_rank = pg_temp.seed_zipf(cs.posts, 1.0, pg_temp.seed_u(105, d.g))
    LEFT JOIN seed_post_ranks gp
      ON gp.global_rank = pg_temp.seed_zipf(__POSTS__, 1.0, pg_temp.seed_u(106, d.g))
    OFFSET 0
), scored AS (
    SELECT k.g, k.user_id, k.post_id, p.post_type, p.duration_ms, p.quality AS q,
           p.created_at + (__ANCHOR__ - p.created_at) * power(pg_temp.seed_u(107, k.g), 2.5) AS created_at,
           (0.5 * (k.source = 'following' OR f.follower_id IS NOT NULL)::integer
            + 0.5 * (p.category_idx IN (k.fav1, k.fav2, k.fav3))::integer) AS a,
           pg_temp.seed_u(108, k.g) AS r
    FROM picked k
    JOIN seed_posts p ON p.post_id = k.post_id
    LEFT JOIN feed.follows f ON f.follower_id = k.user_id AND f.followee_id = p.author_id
    OFFSET 0  -- a fence: each expression above is computed once, not once per use below
), acted AS (
    SELECT s.*,
           CASE
               WHEN s.r < 0.0015 * (1 - s.q) THEN 'report'
               WHEN s.r < 0.0015 * (1 - s.q) + 0.005 * (1 - s.q) THEN 'dislike'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) THEN 'not_interested'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.002 + 0.004 * s.q + 0.002 * s.a THEN 'gift'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.004 + 0.008 * s.q + 0.004 * s.a THEN 'tip'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.012 + 0.008 * s.q + 0.004 * s.a THEN 'unlike'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.016 + 0.016 * s.q + 0.004 * s.a THEN 'trophy'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.028 + 0.026 * s.q + 0.004 * s.a THEN 'praise'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.048 + 0.046 * s.q + 0.004 * s.a THEN 'save'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.063 + 0.061 * s.q + 0.014 * s.a THEN 'share'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.088 + 0.081 * s.q + 0.034 * s.a THEN 'comment'
               WHEN s.r < 0.0065 * (1 - s.q) + 0.012 * (1 - s.a) + 0.248 + 0.221 * s.q + 0.134 * s.a THEN 'like'
               ELSE 'view'
           END AS action,
           CASE WHEN s.post_type = 'video' AND s.duration_ms > 0
                THEN round(greatest(0.0, least(1.0, 0.1 + 0.6 * s.q + 0.2 * s.a
                                                  + 0.5 * (pg_temp.seed_u(109, s.g) - 0.5)))::numeric, 4)
                     ::double precision
           END AS ratio
    FROM scored s
    OFFSET 0
)
SELECT x.user_id, x.post_id, x.action,
       CASE WHEN x.action IN ('gift', 'tip')
            THEN (ARRAY[0.99, 1.99, 4.99, 9.99, 19.99, 49.99, 99.99])
                 [pg_temp.seed_zipf(7, 1.3, pg_temp.seed_u(110, x.g))]
            ELSE 0 END,
       CASE WHEN x.action <> 'view' THEN 0
            WHEN x.ratio IS NOT NULL THEN floor(x.ratio * x.duration_ms / 1000)::integer
            ELSE floor(2 + power(pg_temp.seed_u(111, x.g), 2) * 120)::integer END,
       x.created_at,
       CASE WHEN x.action = 'view' THEN x.ratio END
FROM acted x
ORDER BY x.created_at, x.g;

-- step: impressions
-- sessions of 10 posts; a post appears at most once per session
INSERT INTO feed.impressions (user_id, post_id, seen_at, source, score, session_id)
WITH drawn AS (
    SELECT m, (m - 1) / 10 AS session_no, u.user_id, u.fav1, u.fav2, u.fav3,
           pg_temp.seed_u(201, m) AS source_u,
           CASE WHEN pg_temp.seed_u(202, m) < 0.6 THEN u.fav1 WHEN pg_temp.seed_u(202, m) < 0.9 THEN u.fav2
                ELSE u.fav3 END AS category_idx,
           coalesce(fc.followees, 0) AS followees,
           __ANCHOR__ - __DAYS__ * pg_temp.seed_u(203, (m - 1) / 10) * interval '1 day' AS session_start
    FROM generate_series(1, ceil(__IMPRESSIONS__ * 1.15)::bigint + 20) AS m
    JOIN seed_users u ON u.activity_rank = pg_temp.seed_zipf(__USERS__, 0.9, pg_temp.seed_u(200, (m - 1) / 10))
    LEFT JOIN seed_follow_counts fc ON fc.user_id = u.user_id
    WHERE __IMPRESSIONS__ > 0
    OFFSET 0
), picked AS (
    SELECT DISTINCT ON (d.session_no, coalesce(ap.post_id, cp.post_id, gp.post_id))
           d.m, d.session_no, d.user_id, d.session_start,
           coalesce(ap.post_id, cp.post_id, gp.post_id) AS post_id,
           CASE WHEN ap.post_id IS NOT NULL THEN 'following'
                WHEN cp.post_id IS NOT NULL THEN 'similar' ELSE 'trending' END AS source
    FROM drawn d
    LEFT JOIN seed_followees fe
      ON d.source_u < 0.35 AND d.followees > 0
     AND fe.follower_id = d.user_id AND fe.idx = floor(pg_temp.seed_u(204, d.m) * d.followees)::bigint
    LEFT JOIN seed_post_ranks ap
      ON fe.followee_posts > 0 AND ap.author_id = fe.followee_id
     AND ap.author_idx = floor(power(pg_temp.seed_u(205, d.m), 2) * fe.followee_posts)::bigint
    LEFT JOIN seed_category_sizes cs ON d.source_u >= 0.35 AND d.source_u < 0.7 AND cs.category_idx = d.category_idx
    LEFT JOIN seed_post_ranks cp
      ON cs.posts > 0 AND cp.category_idx = cs.category_idx
     AND cp.category_rank = pg_temp.seed_zipf(cs.posts, 1.0, pg_temp.seed_u(206, d.m))
    LEFT JOIN seed_post_ranks gp
      ON gp.global_rank = pg_temp.seed_zipf(__POSTS__, 1.0, pg_temp.seed_u(207, d.m))
    ORDER BY d.session_no, coalesce(ap.post_id, cp.post_id, gp.post_id), d.m
)
SELECT k.user_id, k.post_id,
       least(__ANCHOR__, greatest(k.session_start, p.created_at + interval '1 minute')
                         + ((k.m - 1) % 10) * interval '4 seconds'),
       k.source, round(pg_temp.seed_u(208, k.m)::numeric, 4)::double precision, 'seed-' || k.session_no
FROM picked k
JOIN seed_posts p ON p.post_id = k.post_id
ORDER BY k.m
LIMIT __IMPRESSIONS__;

-- fresh statistics before the rebuild: planned on empty-table estimates, its
-- joins (post_embeddings above all) turn into nested loops over sequential scans
ANALYZE feed.posts, feed.post_embeddings, feed.interactions, feed.impressions;

-- step: rebuild
SELECT feed._rebuild_derived_state();

-- step: heartbeat
SELECT feed.refresh_trending_scores(feed._setting_interval('trending_window'));
SELECT feed._refresh_creator_quality();
