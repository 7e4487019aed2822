-- served_history.sql: weeks of served feed pages and their engagement, for
-- measuring feed.experiment_results and feed.feed_metrics at scale
-- (docs/experiments.md, "Cost, measured"). Run with psql on a world made by
-- `pgfeed seed` (users 1..:users, posts 1..:posts):
--
--   psql "$DSN" -v users=10000 -v posts=100000 -v days=30 -v per_day=4000 -f sql/tools/served_history.sql
--
-- It starts the experiment `history` (control / hybrid, 50/50) and writes, for
-- each of the last :days days, :per_day sessions of one to three pages of 12
-- rows, spread evenly over time and recorded with the viewer's variant, as
-- feed.get_personalized_feed records them; then likes for about 6% (control)
-- and 7% (hybrid) of the served rows within the attribution window, and 1%
-- after it. Deterministic (hash-based). Rows are written directly, bypassing
-- the feed and the counters: this is a load for analytics, not a world to rank.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO feed.experiments (name, variants, status, description)
VALUES ('history', '{"control": {"weight": 1}, "hybrid": {"weight": 1, "profile": "hybrid"}}', 'running',
        'served_history.sql')
ON CONFLICT (name) DO NOTHING;

CREATE TEMPORARY TABLE history_sessions ON COMMIT DROP AS
SELECT (md5('history-session-' || g)::uuid) AS session_id,
       1 + (hashint8(g) & 2147483647) % :users AS user_id,
       now() - (g::double precision / (:days * :per_day)) * (:days * interval '1 day') AS created_at,
       1 + (hashint8(-g) & 2147483647) % 3 AS pages
FROM generate_series(1, :days * :per_day) g;

INSERT INTO feed.feed_sessions (viewer_key, session_id, user_id, mode, profile, context, seed, pages_served,
                                created_at, expires_at, experiments)
SELECT h.user_id, h.session_id, h.user_id, 'personalized',
       CASE feed.assign_variant(h.user_id, 'history') WHEN 'hybrid' THEN 'hybrid' ELSE 'default' END,
       '{}', hashtextextended(h.session_id::text, 0), h.pages, h.created_at, h.created_at + interval '30 minutes',
       jsonb_build_object('history', feed.assign_variant(h.user_id, 'history'))
FROM history_sessions h;

INSERT INTO feed.feed_session_items (viewer_key, session_id, page_no, rank, post_id, author_id, score, source,
                                     is_repeat, reasons, served_at)
SELECT h.user_id, h.session_id, pg.page_no, r.rank, p.post_id, p.author_id, 1.0 / r.rank,
       s.source, s.source = 'repeat', jsonb_build_object('source', s.source),
       h.created_at + (pg.page_no - 1) * interval '1 minute'
FROM history_sessions h
CROSS JOIN LATERAL generate_series(1, h.pages) AS pg(page_no)
CROSS JOIN generate_series(1, 12) AS r(rank)
CROSS JOIN LATERAL (SELECT hashtextextended(h.session_id::text || ':' || pg.page_no || ':' || r.rank, 0) AS k) x
JOIN feed.posts p ON p.post_id = 1 + (x.k & 2147483647) % :posts
CROSS JOIN LATERAL (SELECT (ARRAY['following', 'following', 'trending', 'rising', 'explore', 'similar',
                                  'collaborative', 'repeat'])[1 + ((x.k >> 32) & 1023) % 8] AS source) s
ON CONFLICT DO NOTHING;

-- engagement: a like within 20 hours of serving (6% of control rows, 7% of
-- hybrid rows), and a like 30 hours after serving (1%, outside the window)
INSERT INTO feed.interactions (user_id, post_id, action, created_at)
SELECT s.user_id, i.post_id, 'like',
       i.served_at + CASE WHEN d.u < CASE WHEN s.experiments ->> 'history' = 'hybrid' THEN 0.07 ELSE 0.06 END
                          THEN d.u * 285 * interval '1 hour' ELSE interval '30 hours' END
FROM feed.feed_sessions s
JOIN feed.feed_session_items i ON i.viewer_key = s.viewer_key AND i.session_id = s.session_id
CROSS JOIN LATERAL (SELECT ((hashtextextended(i.session_id::text || ':like:' || i.post_id, 0) & 1048575)
                            / 1048576.0) AS u) d
WHERE s.experiments ? 'history'
  AND (d.u < CASE WHEN s.experiments ->> 'history' = 'hybrid' THEN 0.07 ELSE 0.06 END
       OR d.u >= 0.99)
  AND i.served_at + CASE WHEN d.u < 0.5 THEN d.u * 285 * interval '1 hour' ELSE interval '30 hours' END < now();
COMMIT;
ANALYZE feed.feed_sessions, feed.feed_session_items, feed.interactions;
