-- pgfeed: the whole current schema, for a fresh install.
--
-- `pgfeed migrate` runs this file on an empty database and stamps the alembic
-- head; existing databases reach the same state through the revisions in
-- alembic/versions/. tests/test_migrations.py proves the two paths agree, so
-- any change here needs a new revision, and the other way round.
--
-- Functions, triggers and views live in sql/functions/ (idempotent, re-applied
-- on every migrate), not here.

CREATE SCHEMA IF NOT EXISTS feed;
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
        CREATE EXTENSION vector;
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
    embedding      vector(384),
    -- engine-maintained
    like_count     bigint NOT NULL DEFAULT 0,
    comment_count  bigint NOT NULL DEFAULT 0,
    share_count    bigint NOT NULL DEFAULT 0,
    view_count     bigint NOT NULL DEFAULT 0,
    gift_amount    numeric(12,2) NOT NULL DEFAULT 0,
    tip_amount     numeric(12,2) NOT NULL DEFAULT 0,
    trending_score double precision NOT NULL DEFAULT 0,
    CONSTRAINT posts_category_not_empty CHECK (btrim(category) <> ''),
    CONSTRAINT posts_post_type_not_empty CHECK (btrim(post_type) <> ''),
    CONSTRAINT posts_visibility_known CHECK (visibility IN ('public', 'shadow_ban', 'removed')),
    CONSTRAINT posts_duration_not_negative CHECK (duration_ms >= 0),
    CONSTRAINT posts_counters_not_negative CHECK (
        like_count >= 0 AND comment_count >= 0 AND share_count >= 0 AND view_count >= 0
        AND gift_amount >= 0 AND tip_amount >= 0)
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
-- similar source and similar_posts(): nearest neighbours by cosine distance
CREATE INDEX posts_embedding_hnsw_idx ON feed.posts USING hnsw (embedding vector_cosine_ops);

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
    interaction_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            bigint NOT NULL,
    post_id            bigint NOT NULL,
    action             text NOT NULL,
    value_amount       numeric(12,2) NOT NULL DEFAULT 0,
    time_spent_seconds integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT interactions_action_known CHECK (action IN (
        'view', 'like', 'unlike', 'comment', 'share', 'gift', 'tip', 'praise', 'trophy',
        'save', 'not_interested', 'report', 'dislike')),
    CONSTRAINT interactions_value_not_negative CHECK (value_amount >= 0),
    CONSTRAINT interactions_time_spent_not_negative CHECK (time_spent_seconds >= 0)
);
-- a viewer's history (incremental recommendation builds, explain)
CREATE INDEX interactions_user_recent_idx ON feed.interactions (user_id, created_at DESC);
-- lookback windows of the batch jobs over the append-only log
CREATE INDEX interactions_created_brin_idx ON feed.interactions USING brin (created_at);

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
    ('ema_alpha',               '0.2',      'number',   'Smoothing factor of the per-viewer and per-creator moving averages.')
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
