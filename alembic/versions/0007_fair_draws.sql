-- Revision 0007: uniform random draws for the random mode and exploration.
-- A post's place in this index is a hash of its id: uniformly spread and
-- unrelated to the id's size, to where the row sits in the table or to gaps
-- between ids. The feed draws a seeded random point in the hash space and
-- reads the next eligible posts from there (a bounded index range scan).
CREATE INDEX posts_random_key_idx ON feed.posts (pg_catalog.hashint8(post_id));
