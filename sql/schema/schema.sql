-- pgfeed: the whole current schema, for a fresh install.
--
-- `pgfeed migrate` runs this file on an empty database and stamps the alembic
-- head; existing databases reach the same state through the revisions in
-- alembic/versions/. tests/test_migrations.py proves the two paths agree, so
-- any change here needs a new revision, and the other way round.
--
-- Functions, triggers and views live in sql/functions/ (idempotent, re-applied
-- on every migrate), not here.

-- Nothing a non-owner can create objects in is on the path while this runs:
-- CHECK constraints and defaults are bound to operators and functions here.
-- pgvector is named with its schema (filled in by pgfeed migrate).
SET LOCAL search_path TO pg_catalog, pg_temp;

CREATE SCHEMA feed;
COMMENT ON SCHEMA feed IS 'pgfeed: personalized feed ranking inside PostgreSQL';

-------------------------------------------------------------------------------
-- install_state: facts about this installation (internal)
CREATE TABLE feed.install_state (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- pgvector: created here unless the host already has it; remembered so that
-- uninstalling (alembic downgrade base) removes it only if pgfeed created it.
DO $install_vector$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'vector') THEN
        CREATE EXTENSION vector SCHEMA public;
        INSERT INTO feed.install_state (key, value) VALUES ('created_extension_vector', 'true');
    END IF;
END
$install_vector$;

-------------------------------------------------------------------------------
-- posts: written by the host; the counters and trending_score by the engine
CREATE TABLE feed.posts (
    post_id        bigint PRIMARY KEY,
    author_id      bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    category       text NOT NULL,
    post_type      text NOT NULL DEFAULT 'post',
    collective_id  bigint,
    visibility     text NOT NULL DEFAULT 'public',
    is_deleted     boolean NOT NULL DEFAULT false,
    media_ready    boolean NOT NULL DEFAULT true,
    duration_ms    integer,
    embedding      @extschema:vector@.vector(384),
    -- engine-maintained
    like_count     bigint NOT NULL DEFAULT 0,
    comment_count  bigint NOT NULL DEFAULT 0,
    share_count    bigint NOT NULL DEFAULT 0,
    view_count     bigint NOT NULL DEFAULT 0,
    gift_amount    numeric(12,2) NOT NULL DEFAULT 0,
    tip_amount     numeric(12,2) NOT NULL DEFAULT 0,
    trending_score double precision NOT NULL DEFAULT 0,
    praise_count   bigint NOT NULL DEFAULT 0,
    trophy_count   bigint NOT NULL DEFAULT 0,
    save_count     bigint NOT NULL DEFAULT 0,
    report_count   bigint NOT NULL DEFAULT 0,
    watch_count    bigint NOT NULL DEFAULT 0,
    watch_ratio_sum double precision NOT NULL DEFAULT 0,
    CONSTRAINT posts_category_not_empty CHECK (btrim(category) <> ''),
    CONSTRAINT posts_post_type_not_empty CHECK (btrim(post_type) <> ''),
    CONSTRAINT posts_visibility_known CHECK (visibility IN ('public', 'shadow_ban', 'removed')),
    CONSTRAINT posts_duration_not_negative CHECK (duration_ms >= 0),
    CONSTRAINT posts_counters_not_negative CHECK (
        like_count >= 0 AND comment_count >= 0 AND share_count >= 0 AND view_count >= 0
        AND gift_amount >= 0 AND tip_amount >= 0),
    CONSTRAINT posts_engine_counters_not_negative CHECK (
        praise_count >= 0 AND trophy_count >= 0 AND save_count >= 0 AND report_count >= 0
        AND watch_count >= 0 AND watch_ratio_sum >= 0)
);
COMMENT ON TABLE feed.posts IS
    'Posts the feed ranks. The host writes identity, metadata and embedding; '
    'like_count .. trending_score are maintained by the engine.';

-- following / author sources: recent posts of given authors
CREATE INDEX posts_author_recent_idx ON feed.posts (author_id, created_at DESC);
-- trending source and the trending/blingram orders: the top of the trending order
CREATE INDEX posts_trending_idx ON feed.posts (trending_score DESC);
-- fresh, rising and chronological sources; the heartbeat's window
CREATE INDEX posts_created_idx ON feed.posts (created_at DESC);
-- collective source: recent posts of the viewer's collectives
CREATE INDEX posts_collective_recent_idx ON feed.posts (collective_id, created_at DESC)
    WHERE collective_id IS NOT NULL;
-- the embedding is stored out of line (TOAST): counter updates copy small rows
ALTER TABLE feed.posts ALTER COLUMN embedding SET STORAGE EXTERNAL;
ALTER TABLE feed.posts SET (toast_tuple_target = 128);

-- feed.post_embeddings: a copy of each non-null embedding, kept by triggers on
-- feed.posts, carrying the HNSW index. Every like updates its post row; an
-- update that is not HOT adds an entry to every index of the table, and an
-- HNSW insert costs milliseconds, so the HNSW index lives here instead.
CREATE TABLE feed.post_embeddings (
    post_id   bigint PRIMARY KEY,
    embedding @extschema:vector@.vector(384) NOT NULL
);
COMMENT ON TABLE feed.post_embeddings IS
    'Copy of feed.posts.embedding (non-null ones), kept by triggers; carries the HNSW index.';
-- similar_posts and the similar source: nearest neighbours by cosine distance
CREATE INDEX post_embeddings_hnsw_idx ON feed.post_embeddings USING hnsw (embedding @extschema:vector@.vector_cosine_ops);

-------------------------------------------------------------------------------
-- the social graph and explicit preferences, written by the host
CREATE TABLE feed.follows (
    follower_id bigint NOT NULL,
    followee_id bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CONSTRAINT follows_not_self CHECK (follower_id <> followee_id)
);
-- who follows an author (follower counts, fan-out)
CREATE INDEX follows_followee_idx ON feed.follows (followee_id);

CREATE TABLE feed.collective_members (
    collective_id bigint NOT NULL,
    user_id       bigint NOT NULL,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collective_id, user_id)
);
-- the collectives a viewer belongs to
CREATE INDEX collective_members_user_idx ON feed.collective_members (user_id);

CREATE TABLE feed.blocks (
    user_id         bigint NOT NULL,
    blocked_user_id bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, blocked_user_id),
    CONSTRAINT blocks_not_self CHECK (user_id <> blocked_user_id)
);
-- who blocked a viewer (blocks hide content in both directions)
CREATE INDEX blocks_blocked_user_idx ON feed.blocks (blocked_user_id, user_id);

CREATE TABLE feed.user_preferences (
    user_id              bigint PRIMARY KEY,
    preferred_post_types text[] NOT NULL DEFAULT '{}',
    muted_authors        bigint[] NOT NULL DEFAULT '{}',
    muted_collectives    bigint[] NOT NULL DEFAULT '{}',
    muted_categories     text[] NOT NULL DEFAULT '{}'
);

-------------------------------------------------------------------------------
-- interactions: append-only log of engagement, written by feed.record_interaction
CREATE TABLE feed.interactions (
    interaction_id     bigint GENERATED ALWAYS AS IDENTITY,
    user_id            bigint NOT NULL,
    post_id            bigint NOT NULL,
    action             text NOT NULL,
    value_amount       numeric(12,2) NOT NULL DEFAULT 0,
    time_spent_seconds integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    watch_ratio        double precision,
    CONSTRAINT interactions_action_known CHECK (action IN (
        'view', 'like', 'unlike', 'comment', 'share', 'gift', 'tip', 'praise', 'trophy',
        'save', 'not_interested', 'report', 'dislike')),
    CONSTRAINT interactions_value_not_negative CHECK (value_amount >= 0),
    CONSTRAINT interactions_time_spent_not_negative CHECK (time_spent_seconds >= 0),
    CONSTRAINT interactions_watch_ratio_range CHECK (watch_ratio BETWEEN 0 AND 1),
    -- names the viewer: on a Citus cluster the log is distributed by user_id,
    -- and a distributed table's unique keys must include that column
    CONSTRAINT interactions_pkey PRIMARY KEY (user_id, interaction_id)
);
-- a viewer's history (incremental recommendation builds, explain)
CREATE INDEX interactions_user_recent_idx ON feed.interactions (user_id, created_at DESC);
-- lookback windows of the batch jobs over the append-only log
CREATE INDEX interactions_created_brin_idx ON feed.interactions USING brin (created_at);

-- import_keys: one row per interaction imported without created_at, keyed by
-- a running SHA-256 of the file up to and including that row (pgfeed import)
CREATE TABLE feed.import_keys (
    import_key  bytea PRIMARY KEY,
    imported_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT import_keys_sha256 CHECK (octet_length(import_key) = 32)
);
COMMENT ON TABLE feed.import_keys IS
    'Interactions imported without created_at, by a running hash of their file up to the row: a re-import skips them.';

-------------------------------------------------------------------------------
-- impressions: what a viewer actually saw; drives the cooldown
CREATE TABLE feed.impressions (
    user_id    bigint NOT NULL,
    post_id    bigint NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    source     text,
    score      double precision,
    session_id text
);
-- a retried impression (same viewer, post and session) counts once;
-- its prefix also answers "has this viewer seen this post"
CREATE UNIQUE INDEX impressions_user_post_session_key
    ON feed.impressions (user_id, post_id, session_id) NULLS NOT DISTINCT;
-- pruning impressions older than the cooldown
CREATE INDEX impressions_seen_brin_idx ON feed.impressions USING brin (seen_at);

-------------------------------------------------------------------------------
-- per-viewer state kept current by the write functions (the feed reads it, never raw logs)
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
    'What a viewer did to an author''s posts, by kind, and the last positive act.';

CREATE TABLE feed.user_post_type_affinity (
    user_id             bigint NOT NULL,
    post_type           text NOT NULL,
    interaction_count   integer NOT NULL DEFAULT 0,
    last_interaction_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, post_type),
    CONSTRAINT user_post_type_affinity_count_not_negative CHECK (interaction_count >= 0)
);
COMMENT ON TABLE feed.user_post_type_affinity IS
    'Hearts, praise and trophies a viewer gave per post type (post-type preference).';

CREATE TABLE feed.user_category_affinity (
    user_id    bigint NOT NULL,
    category   text NOT NULL,
    affinity   double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, category),
    CONSTRAINT user_category_affinity_range CHECK (affinity BETWEEN -1 AND 1)
);
COMMENT ON TABLE feed.user_category_affinity IS
    'Taste per category in [-1, 1] as of updated_at; it halves every category_affinity_half_life.';

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
    'Exponential moving averages of a viewer''s engagement (alpha = ema_alpha).';

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
    'Rolling creator metrics over posts of the last creator_quality_window, refreshed by run_maintenance.';

CREATE TABLE feed.job_runs (
    job         text PRIMARY KEY,
    last_run_at timestamptz NOT NULL,
    last_result jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE feed.job_runs IS 'When each scheduled job last ran and what it did (doctor reads it).';

-------------------------------------------------------------------------------
-- settings: named knobs read by the functions at call time
CREATE TABLE feed.settings (
    name          text PRIMARY KEY,
    value         text NOT NULL,
    default_value text NOT NULL,
    kind          text NOT NULL,
    description   text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT settings_kind_known CHECK (kind IN ('integer', 'number', 'interval', 'text'))
);

INSERT INTO feed.settings (name, value, default_value, kind, description)
SELECT name, value, value, kind, description FROM (VALUES
    ('cooldown',                '30 days',  'interval', 'A post seen or interacted with within this window is not shown again (except as a controlled repeat).'),
    ('max_repeats_per_page',    '2',        'integer',  'At most this many controlled repeats per page while unseen posts remain.'),
    ('protected_top_ranks',     '6',        'integer',  'Controlled repeats never take ranks 1..N unless fewer than N unseen eligible posts exist.'),
    ('inventory_waterline',     '24',       'integer',  'When unseen inventory falls under this, the ladder expands to older and out-of-network posts.'),
    ('max_duration_ms',         '180000',   'integer',  'Posts longer than this (duration_ms) are never shown.'),
    ('epsilon',                 '0.10',     'number',   'Share of page slots given to exploration candidates.'),
    ('max_posts_per_author',    '2',        'integer',  'At most this many posts of one author per page while other candidates exist.'),
    ('session_lifetime',        '30 minutes','interval','How long a feed session (and its cursors) lives.'),
    ('trending_weight_likes',    '1',       'number',   'Trending formula: weight of a like.'),
    ('trending_weight_comments', '3',       'number',   'Trending formula: weight of a comment.'),
    ('trending_weight_shares',   '5',       'number',   'Trending formula: weight of a share.'),
    ('trending_weight_gifts',    '50',      'number',   'Trending formula: weight of one unit of gift amount.'),
    ('trending_weight_tips',     '50',      'number',   'Trending formula: weight of one unit of tip amount.'),
    ('gravity',                 '1.8',      'number',   'Trending formula: how fast scores decay with age.'),
    ('trending_window',         '7 days',   'interval', 'The heartbeat recomputes trending scores of posts created within this window.'),
    ('ema_alpha',               '0.2',      'number',   'Smoothing factor of the per-viewer moving averages (user_signals).'),
    ('category_affinity_half_life', '14 days', 'interval', 'A viewer''s category affinity halves over this time without new signals.'),
    ('author_recency_window',       '7 days',  'interval', 'The "recently interacted" author boost decays to zero over this window.'),
    ('creator_quality_window',      '30 days', 'interval', 'Creator quality is computed over the creator''s posts of this window.'),
    ('heartbeat_batch_size',        '5000',    'integer',  'Posts per heartbeat batch (rows locked at once).'),
    ('maintenance_batch_size',      '50000',   'integer',  'At most this many old impressions/sightings pruned per maintenance run.')
) AS defaults (name, value, kind, description);

-------------------------------------------------------------------------------
-- ranking_profiles: named weights and source quotas, changeable with an UPDATE
CREATE TABLE feed.ranking_profiles (
    name          text PRIMARY KEY,
    description   text NOT NULL,
    weights       jsonb NOT NULL DEFAULT '{}',
    source_quotas jsonb NOT NULL DEFAULT '{}',
    params        jsonb NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ranking_profiles_name_not_empty CHECK (btrim(name) <> ''),
    CONSTRAINT ranking_profiles_weights_object CHECK (jsonb_typeof(weights) = 'object'),
    CONSTRAINT ranking_profiles_quotas_object CHECK (jsonb_typeof(source_quotas) = 'object'),
    CONSTRAINT ranking_profiles_params_object CHECK (jsonb_typeof(params) = 'object')
);

-------------------------------------------------------------------------------
-- feed sessions and the vector / collaborative-filtering state
-- the secret that signs cursors; one per installation
INSERT INTO feed.install_state (key, value)
VALUES ('cursor_secret', encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text
                                                  || clock_timestamp()::text, 'UTF8')), 'hex'))
ON CONFLICT (key) DO NOTHING;

CREATE TABLE feed.feed_sessions (
    session_id   uuid PRIMARY KEY,
    user_id      bigint,
    mode         text NOT NULL,
    profile      text NOT NULL,
    context      jsonb NOT NULL DEFAULT '{}',
    seed         bigint NOT NULL,
    pages_served integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CONSTRAINT feed_sessions_mode_known CHECK (mode IN ('personalized', 'trending', 'chronological', 'random'))
);
COMMENT ON TABLE feed.feed_sessions IS 'A viewer''s scroll through the feed: what p_page_after continues.';
-- run_maintenance: expiring sessions
CREATE INDEX feed_sessions_expires_idx ON feed.feed_sessions (expires_at);

CREATE TABLE feed.feed_session_items (
    session_id uuid NOT NULL REFERENCES feed.feed_sessions (session_id) ON DELETE CASCADE,
    page_no    integer NOT NULL,
    rank       integer NOT NULL,
    post_id    bigint NOT NULL,
    author_id  bigint NOT NULL,
    score      double precision NOT NULL,
    source     text NOT NULL,
    is_repeat  boolean NOT NULL,
    reasons    jsonb NOT NULL,
    PRIMARY KEY (session_id, page_no, rank),
    -- a post appears at most once in a session, whatever happens between pages
    CONSTRAINT feed_session_items_post_once UNIQUE (session_id, post_id)
);
COMMENT ON TABLE feed.feed_session_items IS 'Every page served in a session, kept so a retried cursor gets the same page.';

CREATE TABLE feed.user_taste (
    user_id    bigint PRIMARY KEY,
    taste      @extschema:vector@.vector(384) NOT NULL,
    strength   double precision NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE feed.user_taste IS
    'A viewer''s taste vector: a moving average of the embeddings of posts engaged with (negatives push away).';

CREATE TABLE feed.item_neighbors (
    post_id     bigint NOT NULL,
    neighbor_id bigint NOT NULL,
    score       double precision NOT NULL,
    PRIMARY KEY (post_id, neighbor_id)
);
COMMENT ON TABLE feed.item_neighbors IS 'Top item-to-item collaborative neighbours per post, from build_recommendations.';

CREATE TABLE feed.recommendations (
    user_id      bigint NOT NULL,
    post_id      bigint NOT NULL,
    score        double precision NOT NULL,
    algorithm    text NOT NULL,
    explanation  jsonb NOT NULL DEFAULT '{}',
    generated_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, post_id)
);
COMMENT ON TABLE feed.recommendations IS 'Precomputed per-viewer recommendations, read by the collaborative source.';
-- collaborative source: a viewer's best fresh recommendations
CREATE INDEX recommendations_user_score_idx ON feed.recommendations (user_id, score DESC);
-- run_maintenance: expiring recommendations
CREATE INDEX recommendations_expires_idx ON feed.recommendations (expires_at);

-------------------------------------------------------------------------------
-- identities of end users' own connections (PostgREST, Supabase): a JWT claim
-- that is not an integer maps to a user id here; the host fills it
CREATE TABLE feed.user_identities (
    subject    text PRIMARY KEY,
    user_id    bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_identities_subject_not_empty CHECK (subject <> '')
);
COMMENT ON TABLE feed.user_identities IS
    'JWT subjects (e.g. Supabase UUIDs) of end users, mapped to pgfeed user ids; written by the host.';
-- every identity of a user (when the host deletes or merges a user)
CREATE INDEX user_identities_user_idx ON feed.user_identities (user_id);

-------------------------------------------------------------------------------
-- revision 0006: typed, range-checked settings and per-user engagement states

-- every setting's valid range, next to its kind (the settings_check trigger
-- reads them; the function files fill them in); integers, numbers and
-- intervals are compared as their kind, a text setting's range is its length
ALTER TABLE feed.settings ADD COLUMN min_value text, ADD COLUMN max_value text;
COMMENT ON COLUMN feed.settings.min_value IS 'Smallest valid value (for kind text: shortest length).';
COMMENT ON COLUMN feed.settings.max_value IS 'Largest valid value (for kind text: longest length).';

-- when the call was made (clock_timestamp()); NULL means created_at (imported
-- and older rows). Orders per-user states: the latest call wins.
ALTER TABLE feed.interactions ADD COLUMN called_at timestamptz;
COMMENT ON COLUMN feed.interactions.called_at IS
    'clock_timestamp() of the call that logged the row (NULL: created_at). Orders per-user states.';

-- like, praise, trophy and save are per-user states (contract §3.2 v2): the
-- latest call of one viewer on one post, ordered by (called_at, interaction_id)
CREATE TABLE feed.user_post_state (
    user_id        bigint NOT NULL,
    post_id        bigint NOT NULL,
    state          text NOT NULL,
    active         boolean NOT NULL,
    called_at      timestamptz NOT NULL,
    interaction_id bigint NOT NULL,
    PRIMARY KEY (user_id, post_id, state),
    CONSTRAINT user_post_state_known CHECK (state IN ('liked', 'praised', 'trophied', 'saved'))
);
COMMENT ON TABLE feed.user_post_state IS
    'Per-viewer states of a post (liked, praised, trophied, saved), as of the latest call; derived from feed.interactions.';
-- a setting may be a boolean (personalization_enabled)
ALTER TABLE feed.settings DROP CONSTRAINT settings_kind_known,
    ADD CONSTRAINT settings_kind_known CHECK (kind IN ('integer', 'number', 'interval', 'text', 'boolean'));

-------------------------------------------------------------------------------
-- revision 0007: uniform random draws
-- uniform random draws (random mode, exploration): a post's place in this
-- index is a hash of its id, unrelated to the id's size, the row's place in
-- the table or gaps between ids
CREATE INDEX posts_random_key_idx ON feed.posts (pg_catalog.hashint8(post_id));

-------------------------------------------------------------------------------
-- revision 0008: experiments and analytics
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

-------------------------------------------------------------------------------
-- revision 0010: tag taste
-- a post's optional tags, written by the host; NULL or '{}' means none. The
-- posts_tags_check trigger (sql/functions/15_posts.sql) refuses bad ones and
-- stores them trimmed, lower-case and de-duplicated; this CHECK is its backstop
ALTER TABLE feed.posts ADD COLUMN tags text[];
ALTER TABLE feed.posts ADD CONSTRAINT posts_tags_bounded CHECK (cardinality(tags) <= 32);
COMMENT ON COLUMN feed.posts.tags IS
    'Optional tags (at most 32, each 1..64 characters), stored trimmed, lower-case and de-duplicated.';

-- taste per tag, kept like feed.user_category_affinity (same signals, decay
-- and range); keyed by viewer first, like every per-viewer table
CREATE TABLE feed.user_tag_affinity (
    user_id    bigint NOT NULL,
    tag        text NOT NULL,
    affinity   double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, tag),
    CONSTRAINT user_tag_affinity_range CHECK (affinity BETWEEN -1 AND 1)
);
COMMENT ON TABLE feed.user_tag_affinity IS
    'Taste per post tag in [-1, 1] as of updated_at; it halves every category_affinity_half_life.';

-------------------------------------------------------------------------------
-- revision 0011: analytics read from totals
-- analytics read from totals: per UTC day and source, and per experiment and
-- variant, what feed._rollup_analytics has rolled up, distinct counts
-- included (a batch counts the posts, authors and viewers its rollup table did
-- not hold yet), so feed_metrics and experiment_results read a few rows plus
-- the tail
CREATE TABLE feed.analytics_daily_sources (
    day              date NOT NULL,
    source           text NOT NULL,
    impressions      bigint NOT NULL,
    repeats          bigint NOT NULL,
    engagements      bigint NOT NULL,
    distinct_posts   bigint NOT NULL,
    distinct_authors bigint NOT NULL,
    PRIMARY KEY (day, source)
);
COMMENT ON TABLE feed.analytics_daily_sources IS
    'Rolled-up served rows per UTC day and source, with distinct posts and authors (feed.feed_metrics).';
-- whether an author is already counted for a day and source
CREATE INDEX analytics_daily_posts_author_idx ON feed.analytics_daily_posts (day, source, author_id);

CREATE TABLE feed.analytics_experiment_variants (
    experiment  text NOT NULL REFERENCES feed.experiments (name) ON UPDATE CASCADE ON DELETE CASCADE,
    variant     text NOT NULL,
    viewers     bigint NOT NULL,
    impressions bigint NOT NULL,
    engagements bigint NOT NULL,
    PRIMARY KEY (experiment, variant)
);
COMMENT ON TABLE feed.analytics_experiment_variants IS
    'Rolled-up viewers, impressions and engagements per experiment and variant (feed.experiment_results).';

-- sessions are folded into the rollups soon after they expire, before their
-- attribution window closes: a folded row engaged later is counted then, once
-- (analytics_engaged_rows), from the interactions written since engaged_through
ALTER TABLE feed.analytics_rollup_state ADD COLUMN engaged_through timestamptz NOT NULL DEFAULT '-infinity';
COMMENT ON COLUMN feed.analytics_rollup_state.engaged_through IS
    'Positive interactions written before it are counted in the rollups'' engagements.';

CREATE TABLE feed.analytics_engaged_rows (
    session_id uuid NOT NULL,
    post_id    bigint NOT NULL,
    PRIMARY KEY (session_id, post_id),
    FOREIGN KEY (session_id, post_id) REFERENCES feed.feed_session_items (session_id, post_id) ON DELETE CASCADE
);
COMMENT ON TABLE feed.analytics_engaged_rows IS
    'Served rows of rolled-up sessions already counted as engaged (each counts once).';

-------------------------------------------------------------------------------
-- sessions and their pages are keyed by the viewer: on a Citus cluster they
-- are distributed by viewer_key beside the viewer's other rows, and a
-- distributed table's unique keys must include its distribution column,
-- which may not be NULL. viewer_key is the viewer's user_id, or for an
-- anonymous session its seed (hashtextextended(session_id::text, 0)), so
-- anonymous sessions spread over the shards and a cursor alone finds its
-- session.
ALTER TABLE feed.feed_sessions ADD COLUMN viewer_key bigint;
UPDATE feed.feed_sessions SET viewer_key = coalesce(user_id, seed);
ALTER TABLE feed.feed_sessions ALTER COLUMN viewer_key SET NOT NULL;
COMMENT ON COLUMN feed.feed_sessions.viewer_key IS
    'The viewer''s user_id, or for an anonymous session its seed: the key of its rows (and its shard on a cluster).';
ALTER TABLE feed.feed_session_items ADD COLUMN viewer_key bigint;
UPDATE feed.feed_session_items i SET viewer_key = s.viewer_key
FROM feed.feed_sessions s WHERE s.session_id = i.session_id;
ALTER TABLE feed.feed_session_items ALTER COLUMN viewer_key SET NOT NULL;

-- a coordinator table may not reference a distributed one: the rows of the
-- served pages counted as engaged are deleted with their sessions by
-- run_maintenance instead
ALTER TABLE feed.analytics_engaged_rows DROP CONSTRAINT analytics_engaged_rows_session_id_post_id_fkey;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_session_id_fkey;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_post_once;
ALTER TABLE feed.feed_session_items DROP CONSTRAINT feed_session_items_pkey;
ALTER TABLE feed.feed_sessions DROP CONSTRAINT feed_sessions_pkey;
ALTER TABLE feed.feed_sessions ADD CONSTRAINT feed_sessions_pkey PRIMARY KEY (viewer_key, session_id);
ALTER TABLE feed.feed_session_items
    ADD CONSTRAINT feed_session_items_pkey PRIMARY KEY (viewer_key, session_id, page_no, rank);
-- a post appears at most once in a session, whatever happens between pages
ALTER TABLE feed.feed_session_items
    ADD CONSTRAINT feed_session_items_post_once UNIQUE (viewer_key, session_id, post_id);
ALTER TABLE feed.feed_session_items
    ADD CONSTRAINT feed_session_items_session_fkey FOREIGN KEY (viewer_key, session_id)
    REFERENCES feed.feed_sessions (viewer_key, session_id) ON DELETE CASCADE;
