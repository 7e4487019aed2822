-- Revision 0008: experiments, feature flags and feed analytics (contract §8).
-- Sessions record their viewer's variants, served rows their time, and the
-- rollups keep what analytics needs after sessions expire.
-------------------------------------------------------------------------------
-- experiments (contract §8): A/B tests and feature flags, one mechanism. A
-- variant overrides the profile and/or settings; every column but name and
-- variants is defaulted, so a plain INSERT with status 'running' starts one.
CREATE TABLE feed.experiments (
    name        text PRIMARY KEY,
    variants    jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'draft',
    salt        text,
    description text NOT NULL DEFAULT '',
    started_at  timestamptz,
    stopped_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT experiments_name_not_empty CHECK (btrim(name) <> ''),
    CONSTRAINT experiments_status_known CHECK (status IN ('draft', 'running', 'stopped'))
);
COMMENT ON TABLE feed.experiments IS
    'A/B tests and feature flags: variants (name -> {weight, profile, settings}), assigned by feed.assign_variant.';
COMMENT ON COLUMN feed.experiments.salt IS 'Seeds the assignment hash; NULL means the experiment''s name.';

-- what a session's viewer was assigned when the session started (name -> variant)
ALTER TABLE feed.feed_sessions ADD COLUMN experiments jsonb NOT NULL DEFAULT '{}';
-- when each row was served: engagement is attributed within attribution_window of it
ALTER TABLE feed.feed_session_items ADD COLUMN served_at timestamptz NOT NULL DEFAULT now();

-------------------------------------------------------------------------------
-- analytics rollups: what feed._rollup_analytics keeps of sessions whose
-- attribution window has passed, so results and metrics survive their expiry
CREATE TABLE feed.analytics_rollup_state (
    singleton        boolean PRIMARY KEY DEFAULT true,
    rolled_up_before timestamptz NOT NULL DEFAULT '-infinity',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analytics_rollup_state_one_row CHECK (singleton)
);
COMMENT ON TABLE feed.analytics_rollup_state IS
    'Sessions that expired before rolled_up_before are in the rollups; later ones are read live.';
INSERT INTO feed.analytics_rollup_state DEFAULT VALUES;

CREATE TABLE feed.analytics_daily_posts (
    day         date NOT NULL,
    source      text NOT NULL,
    post_id     bigint NOT NULL,
    author_id   bigint NOT NULL,
    impressions bigint NOT NULL,
    repeats     bigint NOT NULL,
    engagements bigint NOT NULL,
    PRIMARY KEY (day, source, post_id)
);
COMMENT ON TABLE feed.analytics_daily_posts IS
    'Rolled-up served rows per UTC day, source and post (feed.feed_metrics).';

CREATE TABLE feed.analytics_daily_pages (
    day                  date PRIMARY KEY,
    pages                bigint NOT NULL,
    items                bigint NOT NULL,
    repeat_share_sum     double precision NOT NULL,
    distinct_authors_sum bigint NOT NULL
);
COMMENT ON TABLE feed.analytics_daily_pages IS
    'Rolled-up page shapes per UTC day: sums of per-page repeat share and distinct authors (the report).';

CREATE TABLE feed.analytics_experiment_viewers (
    experiment  text NOT NULL REFERENCES feed.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
    variant     text NOT NULL,
    user_id     bigint NOT NULL,
    impressions bigint NOT NULL,
    engagements bigint NOT NULL,
    PRIMARY KEY (experiment, variant, user_id)
);
COMMENT ON TABLE feed.analytics_experiment_viewers IS
    'Rolled-up impressions and engagements per experiment, variant and viewer (feed.experiment_results).';
