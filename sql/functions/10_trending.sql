-- Trending: the Blingram formula, in one place. The reflex
-- update in record_interaction, the heartbeat and new posts all call
-- feed._trending_formula; feed.trending_score is its public face with the
-- default weights.

-------------------------------------------------------------------------------
-- _trending_formula: (wl·L + wc·C + ws·S + wg·gift + wt·tip + 1) / (age_hours + 2)^gravity
-- Age is clamped at zero so a post dated in the future scores as brand new.
-- A SQL-standard body: the planner inlines it into the heartbeat's and the
-- write path's statements (a function call per post otherwise, in a pass over
-- every post of the window); its names are bound when it is created, under
-- the install's pinned search_path, so it needs no SET clause of its own.
CREATE OR REPLACE FUNCTION feed._trending_formula(
    p_likes bigint, p_comments bigint, p_shares bigint, p_gift_amount numeric, p_tip_amount numeric,
    p_created_at timestamptz, p_now timestamptz,
    p_weight_likes double precision, p_weight_comments double precision, p_weight_shares double precision,
    p_weight_gifts double precision, p_weight_tips double precision, p_gravity double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (  p_weight_likes    * coalesce(p_likes, 0)
        + p_weight_comments * coalesce(p_comments, 0)
        + p_weight_shares   * coalesce(p_shares, 0)
        + p_weight_gifts    * coalesce(p_gift_amount, 0)::double precision
        + p_weight_tips     * coalesce(p_tip_amount, 0)::double precision
        + 1)
     / pg_catalog.power(greatest(EXTRACT(epoch FROM p_now - p_created_at)::double precision / 3600.0, 0)
                        + 2, p_gravity);

-------------------------------------------------------------------------------
-- trending_score: the public formula with the seed's default weights (contract
-- §3.3). NULL counts and amounts count as 0; a NULL or infinite time, and a
-- NaN, infinite or negative count or amount, is a 22023 naming the argument.
CREATE OR REPLACE FUNCTION feed.trending_score(
    p_likes bigint, p_comments bigint, p_shares bigint, p_gift_amount numeric, p_tip_amount numeric,
    p_created_at timestamptz, p_now timestamptz DEFAULT now())
RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
BEGIN
    IF p_likes < 0 THEN
        PERFORM feed._bad_argument('p_likes', format('must be zero or positive, got %s', p_likes));
    ELSIF p_comments < 0 THEN
        PERFORM feed._bad_argument('p_comments', format('must be zero or positive, got %s', p_comments));
    ELSIF p_shares < 0 THEN
        PERFORM feed._bad_argument('p_shares', format('must be zero or positive, got %s', p_shares));
    ELSIF p_gift_amount < 0 OR p_gift_amount = 'NaN'::numeric OR p_gift_amount = 'Infinity'::numeric THEN
        PERFORM feed._bad_argument('p_gift_amount', format('must be a finite amount, zero or positive, got %s', p_gift_amount));
    ELSIF p_tip_amount < 0 OR p_tip_amount = 'NaN'::numeric OR p_tip_amount = 'Infinity'::numeric THEN
        PERFORM feed._bad_argument('p_tip_amount', format('must be a finite amount, zero or positive, got %s', p_tip_amount));
    ELSIF p_created_at IS NULL OR NOT isfinite(p_created_at) THEN
        PERFORM feed._bad_argument('p_created_at', format('must be a finite time, got %s', coalesce(p_created_at::text, 'null')));
    ELSIF p_now IS NULL OR NOT isfinite(p_now) THEN
        PERFORM feed._bad_argument('p_now', format('must be a finite time, got %s', coalesce(p_now::text, 'null')));
    END IF;
    RETURN feed._trending_formula(p_likes, p_comments, p_shares, p_gift_amount, p_tip_amount,
                                  p_created_at, p_now, 1.0, 3.0, 5.0, 50.0, 50.0, 1.8);
END
$func$;

-------------------------------------------------------------------------------
-- _trending_weights: the operator's current weights, from feed.settings
CREATE OR REPLACE FUNCTION feed._trending_weights(
    OUT weight_likes double precision, OUT weight_comments double precision,
    OUT weight_shares double precision, OUT weight_gifts double precision,
    OUT weight_tips double precision, OUT gravity double precision)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $func$
    SELECT max(s.value::double precision) FILTER (WHERE s.name = 'trending_weight_likes'),
           max(s.value::double precision) FILTER (WHERE s.name = 'trending_weight_comments'),
           max(s.value::double precision) FILTER (WHERE s.name = 'trending_weight_shares'),
           max(s.value::double precision) FILTER (WHERE s.name = 'trending_weight_gifts'),
           max(s.value::double precision) FILTER (WHERE s.name = 'trending_weight_tips'),
           max(s.value::double precision) FILTER (WHERE s.name = 'gravity')
    FROM feed.settings s
    WHERE s.name IN ('trending_weight_likes', 'trending_weight_comments', 'trending_weight_shares',
                     'trending_weight_gifts', 'trending_weight_tips', 'gravity')
$func$;

-------------------------------------------------------------------------------
-- _posts_rescore: a post's trending_score follows its counters: at insert (a
-- new post competes in the trending source before the next heartbeat) and
-- whenever a counter of the formula changes (the "reflex"
-- update), with the operator's weights. The write path's own update
-- (_bump_post) sets the score itself, in the same statement, and the
-- trigger's condition then leaves it alone.
CREATE OR REPLACE FUNCTION feed._posts_rescore()
RETURNS trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $func$
DECLARE
    w record;
BEGIN
    w := feed._trending_weights();
    NEW.trending_score := feed._trending_formula(
        NEW.like_count, NEW.comment_count, NEW.share_count, NEW.gift_amount, NEW.tip_amount,
        NEW.created_at, now(),
        w.weight_likes, w.weight_comments, w.weight_shares, w.weight_gifts, w.weight_tips, w.gravity);
    RETURN NEW;
END
$func$;

CREATE OR REPLACE TRIGGER posts_score_on_insert
    BEFORE INSERT ON feed.posts
    FOR EACH ROW EXECUTE FUNCTION feed._posts_rescore();

CREATE OR REPLACE TRIGGER posts_rescore
    BEFORE UPDATE OF like_count, comment_count, share_count, gift_amount, tip_amount, created_at ON feed.posts
    FOR EACH ROW
    WHEN ((OLD.like_count IS DISTINCT FROM NEW.like_count
           OR OLD.comment_count IS DISTINCT FROM NEW.comment_count
           OR OLD.share_count IS DISTINCT FROM NEW.share_count
           OR OLD.gift_amount IS DISTINCT FROM NEW.gift_amount
           OR OLD.tip_amount IS DISTINCT FROM NEW.tip_amount
           OR OLD.created_at IS DISTINCT FROM NEW.created_at)
          AND OLD.trending_score IS NOT DISTINCT FROM NEW.trending_score)
    EXECUTE FUNCTION feed._posts_rescore();
