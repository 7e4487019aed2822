-- 0002: engagement write path: engine counters, per-viewer signals, seen/hidden posts, job state

ALTER TABLE feed.posts
    ADD COLUMN praise_count    bigint NOT NULL DEFAULT 0,
    ADD COLUMN trophy_count    bigint NOT NULL DEFAULT 0,
    ADD COLUMN save_count      bigint NOT NULL DEFAULT 0,
    ADD COLUMN report_count    bigint NOT NULL DEFAULT 0,
    ADD COLUMN watch_count     bigint NOT NULL DEFAULT 0,
    ADD COLUMN watch_ratio_sum double precision NOT NULL DEFAULT 0,
    ADD CONSTRAINT posts_engine_counters_not_negative CHECK (
        praise_count >= 0 AND trophy_count >= 0 AND save_count >= 0 AND report_count >= 0
        AND watch_count >= 0 AND watch_ratio_sum >= 0);

ALTER TABLE feed.interactions
    ADD COLUMN watch_ratio double precision,
    ADD CONSTRAINT interactions_watch_ratio_range CHECK (watch_ratio BETWEEN 0 AND 1);

CREATE TABLE feed.seen_posts (
    user_id       bigint NOT NULL,
    post_id       bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    times_seen    integer NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, post_id)
);
COMMENT ON TABLE feed.seen_posts IS
    'Latest sighting of a post by a viewer (impression or interaction): the cooldown and the repeats read it.';
-- controlled repeats: a viewer's seen posts, least recently seen first
CREATE INDEX seen_posts_user_last_seen_idx ON feed.seen_posts (user_id, last_seen_at);

CREATE TABLE feed.hidden_posts (
    user_id    bigint NOT NULL,
    post_id    bigint NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, post_id),
    CONSTRAINT hidden_posts_reason_known CHECK (reason IN ('not_interested', 'dislike', 'report'))
);
COMMENT ON TABLE feed.hidden_posts IS 'Posts a viewer never sees again (not_interested, dislike, report).';

CREATE TABLE feed.user_author_affinity (
    user_id             bigint NOT NULL,
    author_id           bigint NOT NULL,
    like_count          integer NOT NULL DEFAULT 0,
    praise_count        integer NOT NULL DEFAULT 0,
    trophy_count        integer NOT NULL DEFAULT 0,
    comment_count       integer NOT NULL DEFAULT 0,
    share_count         integer NOT NULL DEFAULT 0,
    save_count          integer NOT NULL DEFAULT 0,
    gift_count          integer NOT NULL DEFAULT 0,
    tip_count           integer NOT NULL DEFAULT 0,
    view_count          integer NOT NULL DEFAULT 0,
    negative_count      integer NOT NULL DEFAULT 0,
    last_positive_at    timestamptz,
    PRIMARY KEY (user_id, author_id),
    CONSTRAINT user_author_affinity_counts_not_negative CHECK (
        like_count >= 0 AND praise_count >= 0 AND trophy_count >= 0 AND comment_count >= 0
        AND share_count >= 0 AND save_count >= 0 AND gift_count >= 0 AND tip_count >= 0
        AND view_count >= 0 AND negative_count >= 0)
);
COMMENT ON TABLE feed.user_author_affinity IS
    'What a viewer did to an author''s posts, by kind, and the last positive act (seed 001 interaction history).';

CREATE TABLE feed.user_post_type_affinity (
    user_id             bigint NOT NULL,
    post_type           text NOT NULL,
    interaction_count   integer NOT NULL DEFAULT 0,
    last_interaction_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, post_type),
    CONSTRAINT user_post_type_affinity_count_not_negative CHECK (interaction_count >= 0)
);
COMMENT ON TABLE feed.user_post_type_affinity IS
    'Hearts, praise and trophies a viewer gave per post type (seed 001 post-type preference).';

CREATE TABLE feed.user_category_affinity (
    user_id    bigint NOT NULL,
    category   text NOT NULL,
    affinity   double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, category),
    CONSTRAINT user_category_affinity_range CHECK (affinity BETWEEN -1 AND 1)
);
COMMENT ON TABLE feed.user_category_affinity IS
    'Taste per category in [-1, 1] as of updated_at; it halves every category_affinity_half_life (seed 002).';

CREATE TABLE feed.user_signals (
    user_id      bigint PRIMARY KEY,
    like_rate    double precision NOT NULL DEFAULT 0,
    comment_rate double precision NOT NULL DEFAULT 0,
    share_rate   double precision NOT NULL DEFAULT 0,
    watch_ratio  double precision,
    observations bigint NOT NULL DEFAULT 0,
    watches      bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_signals_rates_range CHECK (
        like_rate BETWEEN 0 AND 1 AND comment_rate BETWEEN 0 AND 1 AND share_rate BETWEEN 0 AND 1
        AND (watch_ratio IS NULL OR watch_ratio BETWEEN 0 AND 1))
);
COMMENT ON TABLE feed.user_signals IS
    'Exponential moving averages of a viewer''s engagement (seed 004 user_interest_signals, alpha = ema_alpha).';

CREATE TABLE feed.creator_quality (
    author_id    bigint PRIMARY KEY,
    watch_ratio  double precision NOT NULL,
    like_rate    double precision NOT NULL,
    report_rate  double precision NOT NULL,
    quality      double precision NOT NULL,
    posts        bigint NOT NULL,
    views        bigint NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE feed.creator_quality IS
    'Rolling creator metrics over posts of the last creator_quality_window, refreshed by run_maintenance (seed 004).';

CREATE TABLE feed.job_runs (
    job         text PRIMARY KEY,
    last_run_at timestamptz NOT NULL,
    last_result jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE feed.job_runs IS 'When each scheduled job last ran and what it did (doctor reads it).';

INSERT INTO feed.settings (name, value, default_value, kind, description)
SELECT name, value, value, kind, description FROM (VALUES
    ('category_affinity_half_life', '14 days', 'interval', 'A viewer''s category affinity halves over this time without new signals.'),
    ('author_recency_window',       '7 days',  'interval', 'The "recently interacted" author boost decays to zero over this window.'),
    ('creator_quality_window',      '30 days', 'interval', 'Creator quality is computed over the creator''s posts of this window.'),
    ('heartbeat_batch_size',        '5000',    'integer',  'Posts per heartbeat batch (rows locked at once).'),
    ('maintenance_batch_size',      '50000',   'integer',  'At most this many old impressions/sightings pruned per maintenance run.')
) AS defaults (name, value, kind, description);

UPDATE feed.settings SET description = 'Smoothing factor of the per-viewer moving averages (user_signals).'
WHERE name = 'ema_alpha';
