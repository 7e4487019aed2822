-- Roles, privileges and row-level security (docs/security.md): the one place
-- where pgfeed says who may do what. Applied last by every migrate, after all
-- functions exist, so a new function or table can never be left with the
-- default privileges. Idempotent.
--
-- Three NOLOGIN group roles, shared by every database of the server; the host
-- grants them to its own login roles:
--   pgfeed_app     a trusted backend: the read and write functions for any
--                  user, and the host tables (not their engine columns);
--   pgfeed_viewer  an end user's own connection (PostgREST, Supabase): the
--                  same functions, only as itself, and its own log rows;
--   pgfeed_admin   pgfeed_app plus settings, profiles, experiments, analytics
--                  and the scheduled work.
-- The public functions are SECURITY DEFINER (declared in their own files),
-- so no role needs any privilege on the engine's tables.

-------------------------------------------------------------------------------
-- the roles, created once per server; concurrent migrations of two databases
-- may race on the same role, which is not an error
DO $roles$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['pgfeed_app', 'pgfeed_viewer', 'pgfeed_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = v_role) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'pgfeed needs the role %, and the migrating role may not create roles', v_role
                        USING ERRCODE = '42501',
                              HINT = 'a superuser runs: CREATE ROLE pgfeed_app NOLOGIN; CREATE ROLE pgfeed_viewer '
                                     'NOLOGIN; CREATE ROLE pgfeed_admin NOLOGIN; GRANT pgfeed_app TO pgfeed_admin; '
                                     '(or grant CREATEROLE to the migrating role), then migrate again';
            END;
        END IF;
    END LOOP;
    -- pgfeed_admin can do everything pgfeed_app can
    IF NOT pg_catalog.pg_has_role('pgfeed_admin', 'pgfeed_app', 'MEMBER') THEN
        GRANT pgfeed_app TO pgfeed_admin;
    END IF;
END
$roles$;

-------------------------------------------------------------------------------
-- start from nothing: no function, table or sequence of schema feed is
-- granted to anyone but its owner (PostgreSQL grants EXECUTE to PUBLIC on
-- every new function)
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA feed FROM PUBLIC, pgfeed_app, pgfeed_viewer, pgfeed_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA feed FROM PUBLIC, pgfeed_app, pgfeed_viewer, pgfeed_admin;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA feed FROM PUBLIC, pgfeed_app, pgfeed_viewer, pgfeed_admin;
REVOKE ALL ON SCHEMA feed FROM PUBLIC;
GRANT USAGE ON SCHEMA feed TO pgfeed_app, pgfeed_viewer, pgfeed_admin;

-------------------------------------------------------------------------------
-- reading and writing (contract §3.1, §3.2), and identity: every role. A
-- pgfeed_viewer caller is held to its own user id inside each function
-- (feed._authorize_viewer).
GRANT EXECUTE ON FUNCTION
    feed.get_personalized_feed(bigint, integer, text, jsonb),
    feed.explain_score(bigint, bigint, jsonb),
    feed.similar_posts(bigint, integer),
    feed.record_interaction(bigint, bigint, text, numeric, integer),
    feed.record_impression(bigint, bigint, text, double precision, text, timestamptz),
    feed.record_impressions(bigint, bigint[], text, timestamptz),
    feed.record_watch_progress(bigint, bigint, integer, integer, boolean, boolean, boolean),
    feed.current_viewer()
TO pgfeed_app, pgfeed_viewer;

-- experiment assignment: every role (contract §7)
GRANT EXECUTE ON FUNCTION feed.assign_variant(bigint, text) TO pgfeed_app, pgfeed_viewer, pgfeed_admin;

-- scheduled work (contract §3.3): administrators and cron
GRANT EXECUTE ON FUNCTION
    feed.trending_score(bigint, bigint, bigint, numeric, numeric, timestamptz, timestamptz),
    feed.refresh_trending_scores(interval),
    feed.build_recommendations(interval),
    feed.build_recommendations(interval, boolean),
    feed.run_maintenance(),
    feed.rebuild_counters(),
    feed.experiment_results(text),
    feed.feed_metrics(interval)
TO pgfeed_admin;

-- adopting the host's own tables (docs/adopt.md): administrators. The generated
-- SQL runs with the caller's own rights on the host table and on feed.*.
GRANT EXECUTE ON FUNCTION feed.adopt_sql(text, regclass, jsonb, boolean), feed.adopted_tables() TO pgfeed_admin;

-------------------------------------------------------------------------------
-- the host tables (contract §2): a backend writes them with plain SQL. The
-- engine-maintained columns of feed.posts (counters, money totals,
-- trending_score) are left out of INSERT and UPDATE: only the engine writes
-- them. The triggers on these tables are SECURITY DEFINER, so these grants
-- are all a backend needs.
GRANT SELECT, DELETE ON feed.posts TO pgfeed_app;
GRANT INSERT (post_id, author_id, created_at, category, post_type, collective_id, visibility, is_deleted,
              media_ready, duration_ms, embedding, tags),
      UPDATE (post_id, author_id, created_at, category, post_type, collective_id, visibility, is_deleted,
              media_ready, duration_ms, embedding, tags)
    ON feed.posts TO pgfeed_app;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON feed.follows, feed.collective_members, feed.blocks, feed.user_preferences, feed.user_identities
    TO pgfeed_app;

-- knobs: administrators change values (each checked by its trigger) and profiles
GRANT SELECT, UPDATE (value) ON feed.settings TO pgfeed_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON feed.ranking_profiles TO pgfeed_admin;
-- experiments and feature flags (contract §8): each row checked by its trigger
GRANT SELECT, INSERT, UPDATE, DELETE ON feed.experiments TO pgfeed_admin;

-------------------------------------------------------------------------------
-- row-level security: an end user's connection reads its own engagement and
-- impressions, nothing else. The owner (and so every SECURITY DEFINER
-- function) is not subject to it.
ALTER TABLE feed.interactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE feed.impressions ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON feed.interactions, feed.impressions TO pgfeed_viewer;

DROP POLICY IF EXISTS viewer_reads_own_interactions ON feed.interactions;
CREATE POLICY viewer_reads_own_interactions ON feed.interactions
    FOR SELECT TO pgfeed_viewer
    USING (user_id OPERATOR(pg_catalog.=) feed.current_viewer());

DROP POLICY IF EXISTS viewer_reads_own_impressions ON feed.impressions;
CREATE POLICY viewer_reads_own_impressions ON feed.impressions
    FOR SELECT TO pgfeed_viewer
    USING (user_id OPERATOR(pg_catalog.=) feed.current_viewer());

-------------------------------------------------------------------------------
-- experiment overrides stay inside the feed call. feed._setting honours
-- pgfeed.setting_overrides, which get_personalized_feed sets for the length
-- of one call; any caller can set that name in its own session, so every
-- other SECURITY DEFINER function clears it for its own duration. All the
-- function files run before this one on every migrate (one digest), so the
-- CREATE OR REPLACE above never leaves one without it.
DO $do$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        WHERE p.pronamespace OPERATOR(pg_catalog.=) 'feed'::regnamespace AND p.prosecdef
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) c
                          WHERE c LIKE 'pgfeed.setting\_overrides=%')
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET pgfeed.setting_overrides = %L', f, '');
    END LOOP;
END
$do$;
