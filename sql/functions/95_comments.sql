-- Table comments whose text changed after their revision was frozen:
-- re-applied by every migrate, so that an upgraded install reads as a fresh one.
COMMENT ON TABLE feed.user_author_affinity IS 'What a viewer did to an author''s posts, by kind, and the last positive act.';
COMMENT ON TABLE feed.user_post_type_affinity IS 'Hearts, praise and trophies a viewer gave per post type (post-type preference).';
COMMENT ON TABLE feed.user_category_affinity IS 'Taste per category in [-1, 1] as of updated_at; it halves every category_affinity_half_life.';
COMMENT ON TABLE feed.user_signals IS 'Exponential moving averages of a viewer''s engagement (alpha = ema_alpha).';
COMMENT ON TABLE feed.creator_quality IS 'Rolling creator metrics over posts of the last creator_quality_window, refreshed by run_maintenance.';
COMMENT ON TABLE feed.recommendations IS 'Precomputed per-viewer recommendations, read by the collaborative source.';
COMMENT ON TABLE feed.user_tag_affinity IS 'Taste per post tag in [-1, 1] as of updated_at; it halves every category_affinity_half_life.';
COMMENT ON COLUMN feed.posts.tags IS 'Optional tags (at most 32, each 1..64 characters), stored trimmed, lower-case and de-duplicated.';
