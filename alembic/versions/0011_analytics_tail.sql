-------------------------------------------------------------------------------
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
-- what is rolled up so far was rolled up after its attribution window closed:
-- every interaction that could engage it was counted
UPDATE feed.analytics_rollup_state
SET engaged_through = rolled_up_before + coalesce((SELECT s.value::interval FROM feed.settings s
                                                   WHERE s.name = 'attribution_window'), interval '24 hours');

-- the totals of what is already rolled up
INSERT INTO feed.analytics_daily_sources (day, source, impressions, repeats, engagements, distinct_posts,
                                          distinct_authors)
SELECT a.day, a.source, sum(a.impressions), sum(a.repeats), sum(a.engagements), count(*),
       count(DISTINCT a.author_id)
FROM feed.analytics_daily_posts a
GROUP BY 1, 2;

INSERT INTO feed.analytics_experiment_variants (experiment, variant, viewers, impressions, engagements)
SELECT a.experiment, a.variant, count(*), sum(a.impressions), sum(a.engagements)
FROM feed.analytics_experiment_viewers a
GROUP BY 1, 2;
