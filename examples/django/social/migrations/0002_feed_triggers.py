"""Keep pgfeed's tables in step with the app's own: triggers on social_post and
social_follow copy every INSERT, UPDATE and DELETE into feed.posts and feed.follows,
and a one-time backfill copies the rows that exist already.

pgfeed must be installed first (`pgfeed migrate` on the same database); this
migration stops with a clear message otherwise. The database user that runs the app
needs to write feed.posts and feed.follows (e.g. GRANT pgfeed_app TO that user).
"""

from django.db import migrations

FORWARD = r"""
DO $check$
BEGIN
    IF to_regclass('feed.posts') IS NULL OR to_regclass('feed.follows') IS NULL THEN
        RAISE EXCEPTION 'pgfeed is not installed in this database'
            USING HINT = 'run `pgfeed migrate --dsn ...` on it, then migrate again';
    END IF;
END
$check$;

-- posts: the app's row is the truth; feed.posts mirrors the columns the ranking needs.
-- A deleted or hidden post stays in feed.posts, marked deleted, so that its history
-- (likes, impressions) stays consistent.
CREATE OR REPLACE FUNCTION social_post_to_feed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE feed.posts SET is_deleted = true WHERE post_id = OLD.id;
        RETURN OLD;
    END IF;
    INSERT INTO feed.posts (post_id, author_id, created_at, category, post_type, duration_ms, is_deleted)
    VALUES (NEW.id, NEW.author_id, NEW.created_at, coalesce(nullif(NEW.category, ''), 'general'),
            NEW.kind, NEW.duration_ms, NEW.hidden)
    ON CONFLICT (post_id) DO UPDATE
        SET author_id = EXCLUDED.author_id, created_at = EXCLUDED.created_at, category = EXCLUDED.category,
            post_type = EXCLUDED.post_type, duration_ms = EXCLUDED.duration_ms, is_deleted = EXCLUDED.is_deleted;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER social_post_to_feed
AFTER INSERT OR UPDATE OR DELETE ON social_post
FOR EACH ROW EXECUTE FUNCTION social_post_to_feed();

CREATE OR REPLACE FUNCTION social_follow_to_feed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM feed.follows WHERE follower_id = OLD.follower_id AND followee_id = OLD.followee_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO feed.follows (follower_id, followee_id, created_at)
        VALUES (NEW.follower_id, NEW.followee_id, NEW.created_at)
        ON CONFLICT (follower_id, followee_id) DO NOTHING;
        RETURN NEW;
    END IF;
    RETURN OLD;
END
$fn$;

CREATE TRIGGER social_follow_to_feed
AFTER INSERT OR UPDATE OR DELETE ON social_follow
FOR EACH ROW EXECUTE FUNCTION social_follow_to_feed();

-- the one-time backfill, for an app that already has posts and follows
INSERT INTO feed.posts (post_id, author_id, created_at, category, post_type, duration_ms, is_deleted)
SELECT id, author_id, created_at, coalesce(nullif(category, ''), 'general'), kind, duration_ms, hidden
FROM social_post
ON CONFLICT (post_id) DO UPDATE
    SET author_id = EXCLUDED.author_id, created_at = EXCLUDED.created_at, category = EXCLUDED.category,
        post_type = EXCLUDED.post_type, duration_ms = EXCLUDED.duration_ms, is_deleted = EXCLUDED.is_deleted;
INSERT INTO feed.follows (follower_id, followee_id, created_at)
SELECT follower_id, followee_id, created_at FROM social_follow
ON CONFLICT (follower_id, followee_id) DO NOTHING;
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS social_follow_to_feed ON social_follow;
DROP FUNCTION IF EXISTS social_follow_to_feed();
DROP TRIGGER IF EXISTS social_post_to_feed ON social_post;
DROP FUNCTION IF EXISTS social_post_to_feed();
"""


class Migration(migrations.Migration):
    dependencies = [("social", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
