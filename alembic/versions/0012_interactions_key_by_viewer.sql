-------------------------------------------------------------------------------
-- the interaction log's key names the viewer: on a Citus cluster the log is
-- distributed by user_id, and a distributed table's unique keys must include
-- its distribution column. interaction_id stays an identity, unique by
-- construction; nothing looks a row up by it alone.
-- Rebuilding the key locks the log against writes for as long as a unique
-- index over it takes to build (about 10 s per 10M rows on two cores).
ALTER TABLE feed.interactions DROP CONSTRAINT interactions_pkey;
ALTER TABLE feed.interactions ADD CONSTRAINT interactions_pkey PRIMARY KEY (user_id, interaction_id);
