-- Revision 0006: typed, range-checked settings and per-user engagement states.

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

-- _apply_interaction now also returns the state change it made
DROP FUNCTION IF EXISTS feed._apply_interaction(bigint, bigint, bigint, text, text, text, numeric, integer,
                                                double precision, timestamptz);
