"""Contract §4, checked as properties over random small worlds (hypothesis).

Each example builds a world of a few users and at most 30 posts in every
state the contract names (visibility, deleted, media not ready, too long,
blocks both ways, mutes, hidden posts, impressions old and new, interactions),
then walks several pages for several viewers, modes and page sizes and checks
every point of §4 that applies against a model computed here in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CATEGORIES = ["art", "music", "jazz"]
POST_TYPES = ["image", "video", "novel"]
USERS = list(range(1, 7))
MAX_DURATION = 180_000
COOLDOWN_DAYS = 30
CAP = 2          # max_posts_per_author
PROTECTED = 6    # protected_top_ranks
# every table load() and the tests' calls write, so that no example (nor, on
# the module-scoped Citus cluster, an earlier test) leaves state for the next:
# a like left in user_post_state made the next example's like of that post a
# repeat that counts nothing
TABLES = ("feed.posts, feed.follows, feed.blocks, feed.user_preferences, feed.collective_members, "
          "feed.interactions, feed.impressions, feed.seen_posts, feed.hidden_posts, feed.user_author_affinity, "
          "feed.user_post_type_affinity, feed.user_category_affinity, feed.user_tag_affinity, "
          "feed.user_post_state, feed.user_signals, feed.user_taste, feed.feed_sessions, feed.creator_quality")


@dataclass
class Post:
    post_id: int
    author_id: int
    category: str
    post_type: str
    visibility: str
    is_deleted: bool
    media_ready: bool
    duration_ms: int | None
    collective_id: int | None
    age_minutes: int


@dataclass
class World:
    posts: list[Post]
    follows: set[tuple[int, int]]
    blocks: set[tuple[int, int]]
    muted_authors: dict[int, list[int]]
    muted_categories: dict[int, list[str]]
    muted_collectives: dict[int, list[int]]
    members: set[tuple[int, int]]
    impressions: list[tuple[int, int, int]]     # user, post, age in days
    interactions: list[tuple[int, int, str]]    # user, post, action
    hidden: dict[int, set[int]] = field(default_factory=dict)
    seen: dict[int, set[int]] = field(default_factory=dict)


@st.composite
def worlds(draw) -> World:
    n_posts = draw(st.integers(0, 30))
    posts = []
    for post_id in range(1, n_posts + 1):
        posts.append(Post(
            post_id=post_id,
            # author 50 is prolific, so the per-author cap binds often
            author_id=draw(st.sampled_from(USERS + [50] * 6 + [51])),
            category=draw(st.sampled_from(CATEGORIES)),
            post_type=draw(st.sampled_from(POST_TYPES)),
            visibility=draw(st.sampled_from(["public"] * 6 + ["shadow_ban", "removed"])),
            is_deleted=draw(st.integers(0, 9)) == 0,
            media_ready=draw(st.integers(0, 9)) != 0,
            duration_ms=draw(st.one_of(st.none(), st.sampled_from([5_000, 60_000, 170_000, 200_000]))),
            collective_id=draw(st.one_of(st.none(), st.integers(1, 3))),
            age_minutes=draw(st.integers(0, 60 * 24 * 40)),
        ))
    pairs = st.tuples(st.sampled_from(USERS + [50, 51]), st.sampled_from(USERS + [50, 51])).filter(lambda p: p[0] != p[1])
    post_ids = st.integers(1, max(n_posts, 1))
    return World(
        posts=posts,
        follows=set(draw(st.lists(pairs, max_size=10))),
        blocks=set(draw(st.lists(pairs, max_size=3))),
        muted_authors={u: draw(st.lists(st.sampled_from(USERS + [50, 51]), max_size=1)) for u in USERS},
        muted_categories={u: draw(st.lists(st.sampled_from(CATEGORIES), max_size=1)) for u in USERS},
        muted_collectives={u: draw(st.lists(st.integers(1, 3), max_size=1)) for u in USERS},
        members=set(draw(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(USERS)), max_size=4))),
        impressions=draw(st.lists(st.tuples(st.sampled_from(USERS), post_ids, st.sampled_from([0, 3, 29, 31, 60])),
                                  max_size=15)) if n_posts else [],
        interactions=draw(st.lists(st.tuples(st.sampled_from(USERS), post_ids,
                                             st.sampled_from(["like", "view", "not_interested", "dislike",
                                                              "report", "comment"])), max_size=8)) if n_posts else [],
    )


def load(db: psycopg.Connection, world: World) -> None:
    db.execute(f"TRUNCATE {TABLES} CASCADE")
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO feed.posts (post_id, author_id, category, post_type, visibility, is_deleted, media_ready,"
            " duration_ms, collective_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " now() - make_interval(mins => %s))",
            [(p.post_id, p.author_id, p.category, p.post_type, p.visibility, p.is_deleted, p.media_ready,
              p.duration_ms, p.collective_id, p.age_minutes) for p in world.posts])
        cur.executemany("INSERT INTO feed.follows (follower_id, followee_id) VALUES (%s, %s)", sorted(world.follows))
        cur.executemany("INSERT INTO feed.blocks (user_id, blocked_user_id) VALUES (%s, %s)", sorted(world.blocks))
        cur.executemany("INSERT INTO feed.collective_members (collective_id, user_id) VALUES (%s, %s)",
                        sorted(world.members))
        cur.executemany(
            "INSERT INTO feed.user_preferences (user_id, muted_authors, muted_categories, muted_collectives)"
            " VALUES (%s, %s, %s, %s)",
            [(u, world.muted_authors.get(u, []), world.muted_categories.get(u, []), world.muted_collectives.get(u, [])) for u in USERS])
        for user, post, days in world.impressions:
            cur.execute("SELECT feed.record_impression(%s, %s, 'test', NULL, %s, now() - make_interval(days => %s))",
                        [user, post, f"s{days}", days])
            if days < COOLDOWN_DAYS:
                world.seen.setdefault(user, set()).add(post)
        for user, post, action in world.interactions:
            cur.execute("SELECT feed.record_interaction(%s, %s, %s)", [user, post, action])
            world.seen.setdefault(user, set()).add(post)
            if action in ("not_interested", "dislike", "report"):
                world.hidden.setdefault(user, set()).add(post)


def eligible(world: World, viewer: int | None, post: Post) -> bool:
    if post.is_deleted or not post.media_ready:
        return False
    if post.duration_ms is not None and post.duration_ms > MAX_DURATION:
        return False
    if not (post.visibility == "public" or (post.visibility == "shadow_ban" and post.author_id == viewer)):
        return False
    if viewer is None:
        return True
    if post.author_id == viewer:
        return False
    if (viewer, post.author_id) in world.blocks or (post.author_id, viewer) in world.blocks:
        return False
    if post.author_id in world.muted_authors.get(viewer, []):
        return False
    if post.category in world.muted_categories.get(viewer, []):
        return False
    if post.collective_id is not None and post.collective_id in world.muted_collectives.get(viewer, []):
        return False
    return post.post_id not in world.hidden.get(viewer, set())


def fetch_page(db, viewer, size, cursor, context):
    return db.execute(
        "SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
        " FROM feed.get_personalized_feed(%s, %s, %s, %s)",
        [viewer, size, cursor, psycopg.types.json.Jsonb(context)]).fetchall()


@dataclass
class Knobs:
    """The settings a session runs under (§6), and the request's filters (§4.14)."""

    max_repeats: int = 2          # max_repeats_per_page
    protected: int = PROTECTED    # protected_top_ranks
    waterline: int = 24           # inventory_waterline
    share: float = 0.5            # max_category_share
    exclude: tuple[int, ...] = ()
    in_network: bool = False


def apply_knobs(db, knobs: Knobs) -> None:
    for name, value in [("max_repeats_per_page", knobs.max_repeats), ("protected_top_ranks", knobs.protected),
                        ("inventory_waterline", knobs.waterline), ("max_category_share", knobs.share)]:
        db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [str(value), name])


def in_network(world: World, viewer, post: Post) -> bool:
    return (viewer, post.author_id) in world.follows or (
        post.collective_id is not None and (post.collective_id, viewer) in world.members)


def check_session(db, world: World, viewer, mode, size, knobs: Knobs | None = None):
    knobs = knobs or Knobs()
    posts = {p.post_id: p for p in world.posts}
    eligible_ids = {p.post_id for p in world.posts if eligible(world, viewer, p)} - set(knobs.exclude)
    if knobs.in_network and viewer is not None:
        eligible_ids = {i for i in eligible_ids if in_network(world, viewer, posts[i])}
    seen = world.seen.get(viewer, set()) if viewer is not None else set()
    context = {"mode": mode} if mode else {}
    if knobs.exclude:
        context["exclude_post_ids"] = list(knobs.exclude)
    if knobs.in_network:
        context["in_network_only"] = True
    category_cap = max(int(knobs.share * size + 1e-9), 1)
    served: set[int] = set()
    cursor = None
    for page_no in range(1, 7):
        page = fetch_page(db, viewer, size, cursor, context)
        remaining = eligible_ids - served
        unseen = remaining - seen
        seen_left = remaining & seen
        ids = [row[1] for row in page]
        where = f"viewer={viewer} mode={mode} size={size} page={page_no} knobs={knobs}"

        # ranks are 1..n, one next_cursor per page
        assert [row[0] for row in page] == list(range(1, len(page) + 1)), where
        assert len({row[7] for row in page}) <= 1, where
        # §4.1 nothing ineligible (§4.14: nothing excluded, nothing out of the network)
        assert set(ids) <= eligible_ids, (where, set(ids) - eligible_ids)
        # §4.2 never twice in one session
        assert len(ids) == len(set(ids)) and not (set(ids) & served), where
        # §4.4 / §4.5 how many unseen rows and controlled repeats the page holds
        low = len(unseen) < max(knobs.waterline, size)
        if viewer is None or knobs.max_repeats == 0 or not low:
            n_repeats = 0
        else:
            n_repeats = min(len(seen_left), max(size - len(unseen),
                                                min(knobs.max_repeats, max(size - knobs.protected, 0))), size)
        n_fresh = min(len(unseen), size - n_repeats)
        repeats = [row for row in page if row[5]]
        fresh = [row for row in page if not row[5]]
        assert (len(fresh), len(repeats)) == (n_fresh, n_repeats), (where, len(unseen), len(seen_left))
        if knobs.max_repeats and viewer is not None:
            # bottomless: full whenever enough eligible posts are left, else all of them
            assert len(page) == min(size, len(remaining)), (where, len(page), len(remaining))
        for row in page:
            assert row[5] == (row[4] == "repeat"), where
            assert (row[1] in seen) == row[5], (where, row[1], "seen" if row[1] in seen else "unseen")
        # repeats sit right after the protected top ranks (after every unseen
        # row when fewer unseen rows are left), never in them while enough unseen posts exist
        top = min(knobs.protected, n_fresh)
        assert [row[0] for row in repeats] == list(range(top + 1, top + 1 + n_repeats)), where
        if len(unseen) >= knobs.protected:
            assert all(row[0] > knobs.protected for row in repeats), where
        if len(unseen) >= size - knobs.max_repeats:
            assert len(repeats) <= knobs.max_repeats, where
        # §4.6 / §4.15 caps: over a cap only when no candidate within the caps was left
        per_author: dict[int, int] = {}
        per_category: dict[str, int] = {}
        for row in page:
            per_author[row[2]] = per_author.get(row[2], 0) + 1
            per_category[posts[row[1]].category] = per_category.get(posts[row[1]].category, 0) + 1
        complete = len(unseen) < max(knobs.waterline, size)   # the ladder read every eligible post
        for pool, rows in ((unseen, fresh), (seen_left, repeats)):
            if not rows or not complete:
                continue
            left = pool - set(ids)
            # a pool's rows are over a cap only when none of its own candidates within the caps was
            # left (the other pool's rows, whose number is fixed, may be what fills a category)
            if any(per_author[row[2]] > CAP for row in rows):
                within = [p for p in left if per_author.get(posts[p].author_id, 0) < CAP
                          and per_category.get(posts[p].category, 0) < category_cap]
                assert not within, (where, per_author, within)
            if any(per_category[posts[row[1]].category] > category_cap for row in rows):
                other = [p for p in left if per_category.get(posts[p].category, 0) < category_cap]
                assert not other, (where, per_category, other)
        # §4.9 modes keep their order among fresh rows
        if mode == "chronological":
            ages = [posts[row[1]].age_minutes for row in fresh]
            assert ages == sorted(ages), where
        # §4.2 the same cursor gives the same page
        if cursor is not None:
            assert fetch_page(db, viewer, size, cursor, context) == page, where
        served |= set(ids)
        if not page or len(page) < size:
            break
        cursor = page[0][7]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), size=st.sampled_from([1, 3, 5, 12]),
       mode=st.sampled_from([None, "personalized", "trending", "chronological", "random"]))
def test_every_page_keeps_the_contract(db, world, size, mode):
    load(db, world)
    for viewer in (1, 2, 99, None):
        check_session(db, world, viewer, mode, size)


knob_values = st.builds(
    Knobs, max_repeats=st.sampled_from([0, 1, 2, 3]), protected=st.sampled_from([0, 3, 6]),
    waterline=st.sampled_from([0, 24, 100]), share=st.sampled_from([0.34, 0.5, 1.0]),
    exclude=st.lists(st.integers(1, 30), max_size=5).map(tuple), in_network=st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), size=st.sampled_from([1, 3, 5, 12]),
       mode=st.sampled_from([None, "personalized", "trending", "chronological", "random"]), knobs=knob_values)
def test_every_page_keeps_the_contract_under_any_settings_and_filters(db, world, size, mode, knobs):
    """§4.4-§4.6, §4.12, §4.14, §4.15 with the settings and request filters drawn at random."""
    load(db, world)
    apply_knobs(db, knobs)
    for viewer in (1, 2, None):
        check_session(db, world, viewer, mode, size, knobs)


def test_bottomless_with_heavy_history_falls_back_to_repeats(db):
    """A viewer who has seen almost everything still gets full pages, repeats last."""
    world = World(
        posts=[Post(i, 50 + i % 5, "art", "image", "public", False, True, None, None, i * 10) for i in range(1, 21)],
        follows=set(), blocks=set(), muted_authors={}, muted_categories={}, muted_collectives={}, members=set(),
        impressions=[(1, i, 1) for i in range(1, 18)], interactions=[])
    load(db, world)
    page = fetch_page(db, 1, 12, None, {})
    assert len(page) == 12
    assert [row[5] for row in page] == [False] * 3 + [True] * 9
    check_session(db, world, 1, None, 12)


def test_one_prolific_author_gets_at_most_two_slots_while_others_exist(db):
    posts = [Post(i, 50, "art", "image", "public", False, True, None, None, i) for i in range(1, 13)]
    posts += [Post(100 + i, 60 + i, "art", "image", "public", False, True, None, None, 600 + i) for i in range(8)]
    world = World(posts=posts, follows={(1, 50)}, blocks=set(), muted_authors={}, muted_categories={},
                  muted_collectives={}, members=set(), impressions=[], interactions=[])
    load(db, world)
    # the prolific author is followed and popular: without the cap it would fill the page
    db.execute("UPDATE feed.posts SET like_count = 50 WHERE author_id = 50")
    social = {"profile": "social"}
    page = fetch_page(db, 1, 8, None, social)
    assert sum(row[2] == 50 for row in page) == 2
    page = fetch_page(db, 1, 12, None, social)
    assert sum(row[2] == 50 for row in page) == 4, "with only 8 other posts, the cap gives way to fill the page"
    diversity = sorted((row[6]["multipliers"]["author_diversity"] for row in page if row[2] == 50), reverse=True)
    assert diversity == [1.0, 0.625, 0.4375, 0.34375]


@st.composite
def changes(draw):
    """What may happen between serving a page and retrying its cursor."""
    return draw(st.lists(st.one_of(
        st.tuples(st.just("delete"), st.integers(1, 30)),
        st.tuples(st.just("remove"), st.integers(1, 30)),
        st.tuples(st.just("hide"), st.integers(1, 30)),
        st.tuples(st.just("block"), st.sampled_from(USERS + [50, 51])),
        st.tuples(st.just("blocked_by"), st.sampled_from(USERS + [50, 51])),
        st.tuples(st.just("mute_author"), st.sampled_from(USERS + [50, 51])),
        st.tuples(st.just("mute_category"), st.sampled_from(CATEGORIES)),
        st.tuples(st.just("like"), st.integers(1, 30)),      # harmless: stays
    ), max_size=4))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(world=worlds(), size=st.sampled_from([2, 5, 12]),
       mode=st.sampled_from(["personalized", "trending", "chronological", "random"]), happened=changes())
def test_a_retried_page_is_the_page_as_served_minus_what_became_never_shown(db, world, size, mode, happened):
    """§4.13 on random small worlds."""
    load(db, world)
    viewer = 1
    first = fetch_page(db, viewer, size, None, {"mode": mode})
    if not first:
        return
    second = fetch_page(db, viewer, size, first[0][7], {})
    posts = {p.post_id: p for p in world.posts}
    for kind, target in happened:
        if kind in ("delete", "remove", "hide", "like") and target not in posts:
            continue
        if kind == "delete":
            db.execute("UPDATE feed.posts SET is_deleted = true WHERE post_id = %s", [target])
            posts[target].is_deleted = True
        elif kind == "remove":
            db.execute("UPDATE feed.posts SET visibility = 'removed' WHERE post_id = %s", [target])
            posts[target].visibility = "removed"
        elif kind == "hide":
            db.execute("SELECT feed.record_interaction(%s, %s, 'not_interested')", [viewer, target])
            world.hidden.setdefault(viewer, set()).add(target)
        elif kind == "like":
            db.execute("SELECT feed.record_interaction(%s, %s, 'like')", [viewer, target])
        elif kind in ("block", "blocked_by") and target != viewer:
            pair = (viewer, target) if kind == "block" else (target, viewer)
            db.execute("INSERT INTO feed.blocks VALUES (%s, %s) ON CONFLICT DO NOTHING", list(pair))
            world.blocks.add(pair)
        elif kind == "mute_author":
            db.execute("UPDATE feed.user_preferences SET muted_authors = array_append(muted_authors, %s::bigint)"
                       " WHERE user_id = %s", [target, viewer])
            world.muted_authors.setdefault(viewer, []).append(target)
        elif kind == "mute_category":
            db.execute("UPDATE feed.user_preferences SET muted_categories = array_append(muted_categories, %s::text)"
                       " WHERE user_id = %s", [target, viewer])
            world.muted_categories.setdefault(viewer, []).append(target)
    replay = fetch_page(db, viewer, size, first[0][7], {})
    expected = [row for row in second if eligible(world, viewer, posts[row[1]])]
    assert [row[1] for row in replay] == [row[1] for row in expected], happened
    assert [row[0] for row in replay] == list(range(1, len(replay) + 1))
    assert [row[2:7] for row in replay] == [row[2:7] for row in expected]
