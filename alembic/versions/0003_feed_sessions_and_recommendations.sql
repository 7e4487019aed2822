-- 0003: feed sessions (served pages, cursors) and the vector / collaborative-filtering state

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
    taste      vector(384) NOT NULL,
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
COMMENT ON TABLE feed.recommendations IS 'Precomputed per-viewer recommendations (seed 002/003), read by the collaborative source.';
-- collaborative source: a viewer's best fresh recommendations
CREATE INDEX recommendations_user_score_idx ON feed.recommendations (user_id, score DESC);
-- run_maintenance: expiring recommendations
CREATE INDEX recommendations_expires_idx ON feed.recommendations (expires_at);
