"""Request filters (§4.14), topic diversity (§4.15), the personalization switch,
safe replays (§4.13) and every setting of §6 changing behaviour (§4.12)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .helpers import add_post

MODES = ["personalized", "trending", "chronological", "random"]


def page(db, user, size=12, cursor=None, context=None):
    return db.execute(
        "SELECT rank, post_id, author_id, score, source, is_repeat, reasons, next_cursor"
        " FROM feed.get_personalized_feed(%s, %s, %s, %s)", [user, size, cursor, Jsonb(context or {})]).fetchall()


def setting(db, name, value):
    db.execute("UPDATE feed.settings SET value = %s WHERE name = %s", [str(value), name])


def world(db, n=40, categories=("art", "music", "jazz")):
    for i in range(1, n + 1):
        add_post(db, i, author_id=100 + i % 13, category=categories[i % len(categories)],
                 age=f"{i * 3} hours", like_count=(i * 7) % 23)


def category_of(db, ids):
    return dict(db.execute("SELECT post_id, category FROM feed.posts WHERE post_id = ANY(%s)", [ids]).fetchall())


# ---------------------------------------------------------------------------
# §4.14 exclude_post_ids and in_network_only

@pytest.mark.parametrize("mode", MODES)
def test_excluded_posts_stay_off_the_whole_session(db, mode):
    world(db, 40)
    excluded = [1, 2, 3, 5, 8, 13, 21, 34]
    first = page(db, 1, 10, None, {"mode": mode, "exclude_post_ids": excluded})
    ids = {r[1] for r in first}
    cursor = first[0][7]
    # a later page may add more ids: they join the session's
    later = page(db, 1, 10, cursor, {"exclude_post_ids": [4, 6]})
    ids2 = {r[1] for r in later}
    rest = []
    cursor2 = later[0][7]
    while cursor2:
        rows = page(db, 1, 10, cursor2)
        rest += [r[1] for r in rows]
        cursor2 = rows[0][7] if len(rows) == 10 else None
    assert not ids & set(excluded) and not ids2 & set(excluded + [4, 6]) and not set(rest) & set(excluded + [4, 6])
    assert len(ids | ids2 | set(rest)) == 40 - len(excluded) - len({4, 6} - ids)
    # the retried cursor honours the exclusions too
    assert not {r[1] for r in page(db, 1, 10, cursor, {"exclude_post_ids": list(ids2)[:2]})} & set(list(ids2)[:2])
    explained = db.execute("SELECT feed.explain_score(1, 1, %s)", [Jsonb({"exclude_post_ids": [1]})]).fetchone()[0]
    assert explained["eligible"] is False and "excluded_by_request" in explained["excluded_because"]


@pytest.mark.parametrize("mode", MODES)
def test_in_network_only_never_leaves_the_network(db, mode):
    world(db, 60)
    db.execute("INSERT INTO feed.follows VALUES (1, 101), (1, 102)")
    db.execute("UPDATE feed.posts SET collective_id = 7 WHERE post_id IN (50, 51)")
    db.execute("INSERT INTO feed.collective_members VALUES (7, 1)")
    network = {r[0] for r in db.execute(
        "SELECT post_id FROM feed.posts WHERE author_id IN (101, 102) OR collective_id = 7").fetchall()}
    rows = page(db, 1, 12, None, {"mode": mode, "in_network_only": True})
    served = [r[1] for r in rows]
    cursor = rows[0][7] if rows else None
    while cursor and len(rows) == 12:
        rows = page(db, 1, 12, cursor)
        served += [r[1] for r in rows]
        cursor = rows[0][7] if rows else None
    assert set(served) == network, "every network post, nothing else; then short pages, no repeats"
    outside = next(iter(set(range(1, 61)) - network))
    explained = db.execute("SELECT feed.explain_score(1, %s, '{\"in_network_only\": true}')", [outside]).fetchone()[0]
    assert "out_of_network" in explained["excluded_because"]


@pytest.mark.parametrize("context,key", [
    ({"exclude_post_ids": "1,2"}, "p_context.exclude_post_ids"),
    ({"exclude_post_ids": ["1"]}, "p_context.exclude_post_ids"),
    ({"exclude_post_ids": [1.5]}, "p_context.exclude_post_ids"),
    ({"exclude_post_ids": [[1]]}, "p_context.exclude_post_ids"),
    ({"exclude_post_ids": [1] * 1001}, "p_context.exclude_post_ids"),
    ({"in_network_only": "yes"}, "p_context.in_network_only"),
    ({"in_network_only": 1}, "p_context.in_network_only"),
])
def test_bad_filter_keys_are_22023_naming_the_key(db, context, key):
    for call in ("SELECT * FROM feed.get_personalized_feed(1, 10, NULL, %s)", "SELECT feed.explain_score(1, 1, %s)"):
        add_post(db, 1) if call.startswith("SELECT feed.explain") and not db.execute(
            "SELECT 1 FROM feed.posts WHERE post_id = 1").fetchone() else None
        with pytest.raises(psycopg.Error) as excinfo:
            db.execute(call, [Jsonb(context)])
        assert excinfo.value.sqlstate == "22023" and key in str(excinfo.value)
        db.rollback() if db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE else None


# ---------------------------------------------------------------------------
# §4.15 topic diversity

@pytest.mark.parametrize("mode", MODES)
def test_one_category_takes_at_most_its_share_while_others_have_candidates(db, mode):
    for i in range(1, 31):    # art: newest and most trending
        add_post(db, i, author_id=200 + i, category="art", age=f"{i} minutes", like_count=500 - i)
    for i in range(31, 41):
        add_post(db, i, author_id=200 + i, category="music", age=f"{i} days")
    rows = page(db, 1, 10, None, {"mode": mode})
    cats = category_of(db, [r[1] for r in rows])
    assert sum(c == "art" for c in cats.values()) == 5
    # 3 rows each cannot fill 10: the excess spreads over the categories
    setting(db, "max_category_share", "0.3")
    rows = page(db, 1, 10, None, {"mode": mode})
    assert sum(c == "art" for c in category_of(db, [r[1] for r in rows]).values()) == 5
    # every row counts, and the cap gives way once other categories run out
    setting(db, "max_category_share", "0.5")
    rows = page(db, 1, 30, None, {"mode": mode})
    assert sum(c == "art" for c in category_of(db, [r[1] for r in rows]).values()) == 20


@pytest.mark.parametrize("mode", MODES)
def test_a_repeat_counts_against_the_category_share_of_the_unseen_rows(db, mode):
    # 13 posts, 7 music (the most trending and newest) and 6 art; the viewer has
    # seen one music post, so a page of 12 holds 11 unseen rows and 1 repeat.
    # The repeat is music: the unseen rows must then take 5 music and all 6 art,
    # not 6 music (the share of a page of 12 is 6) beside the music repeat.
    for i in range(1, 8):
        add_post(db, i, author_id=300 + i, category="music", age=f"{i} minutes", like_count=100 - i)
    for i in range(8, 14):
        add_post(db, i, author_id=300 + i, category="art", age=f"{i} days")
    seen(db, 1, 4, 1)
    rows = page(db, 1, 12, None, {"mode": mode})
    assert len(rows) == 12 and [r[1] for r in rows if r[5]] == [4]
    cats = category_of(db, [r[1] for r in rows])
    assert sorted(cats.values()).count("music") == 6 and sorted(cats.values()).count("art") == 6
    # and the other way round: a repeat is picked from the category the unseen rows leave room in
    db.execute("TRUNCATE feed.seen_posts, feed.feed_sessions CASCADE")
    seen(db, 1, 5, 2)    # music, least recently seen: first in the repeats' order
    seen(db, 1, 9, 1)    # art
    for i in range(8, 14):
        if i != 9:
            db.execute("UPDATE feed.posts SET category = 'music' WHERE post_id = %s", [i])
    # unseen: 11 music, every one of them needed; one repeat: the art one, though
    # the music one was seen longer ago
    setting(db, "max_repeats_per_page", "1")
    rows = page(db, 1, 12, None, {"mode": mode})
    assert [r[1] for r in rows if r[5]] == [9], rows


# ---------------------------------------------------------------------------
# personalization_enabled

def test_personalization_switch_gives_known_viewers_the_trending_mode(db):
    world(db, 30)
    setting(db, "personalization_enabled", "false")
    rows = page(db, 1, 10)
    assert {r[4] for r in rows} == {"trending"} and rows[0][6]["mode"] == "trending"
    assert {r[4] for r in page(db, 1, 10, None, {"mode": "personalized"})} != {"trending"}
    assert {r[4] for r in page(db, None, 10)} == {"chronological"}
    assert db.execute("SELECT feed.explain_score(1, 1)").fetchone()[0]["mode"] == "trending"
    setting(db, "personalization_enabled", "true")
    assert page(db, 1, 10)[0][6]["mode"] == "personalized"


# ---------------------------------------------------------------------------
# §4.13 safe replays

@pytest.mark.parametrize("change", ["delete", "remove", "block", "block_back", "mute_author", "mute_category",
                                    "hide", "report"])
def test_a_retried_page_drops_posts_that_became_never_shown(db, change):
    world(db, 40)
    first = page(db, 1, 10)
    second = page(db, 1, 10, first[0][7])
    victim = second[3]
    post_id, author_id = victim[1], victim[2]
    category = category_of(db, [post_id])[post_id]
    statements = {
        "delete": ("UPDATE feed.posts SET is_deleted = true WHERE post_id = %s", [post_id]),
        "remove": ("UPDATE feed.posts SET visibility = 'removed' WHERE post_id = %s", [post_id]),
        "block": ("INSERT INTO feed.blocks VALUES (1, %s)", [author_id]),
        "block_back": ("INSERT INTO feed.blocks VALUES (%s, 1)", [author_id]),
        "mute_author": ("INSERT INTO feed.user_preferences (user_id, muted_authors) VALUES (1, ARRAY[%s::bigint])",
                        [author_id]),
        "mute_category": ("INSERT INTO feed.user_preferences (user_id, muted_categories) VALUES (1, ARRAY[%s])",
                          [category]),
        "hide": ("SELECT feed.record_interaction(1, %s, 'not_interested')", [post_id]),
        "report": ("SELECT feed.record_interaction(1, %s, 'report')", [post_id]),
    }
    db.execute(*statements[change])
    gone = {r[0] for r in db.execute(
        "SELECT post_id FROM feed.posts WHERE post_id = ANY(%s) AND (is_deleted OR visibility = 'removed'"
        " OR author_id = %s AND %s IN ('block', 'block_back', 'mute_author') OR category = %s AND %s = 'mute_category')",
        [[r[1] for r in second], author_id, change, category, change]).fetchall()} | {post_id}
    replay = page(db, 1, 10, first[0][7])
    expected = [r for r in second if r[1] not in gone]
    assert [r[1] for r in replay] == [r[1] for r in expected], "same posts, same order"
    assert [r[0] for r in replay] == list(range(1, len(replay) + 1))
    assert [r[3:7] for r in replay] == [r[3:7] for r in expected]


# ---------------------------------------------------------------------------
# §4.12 every setting of §6 changes behaviour

def seen(db, user, post_id, days):
    db.execute("SELECT feed.record_impression(%s, %s, NULL, NULL, NULL, now() - make_interval(days => %s))",
               [user, post_id, days])


def test_cooldown(db):
    world(db, 5)
    seen(db, 1, 1, 10)
    assert 1 not in [r[1] for r in page(db, 1, 4) if not r[5]]
    setting(db, "cooldown", "5 days")
    assert 1 in [r[1] for r in page(db, 1, 5) if not r[5]]


def test_max_repeats_protected_ranks_and_waterline(db):
    world(db, 30)
    for post_id in range(1, 13):
        seen(db, 1, post_id, 1)
    # 18 unseen, under the waterline (24): two repeats right after the protected top 6
    rows = page(db, 1, 12)
    assert [r[0] for r in rows if r[5]] == [7, 8]
    setting(db, "protected_top_ranks", "2")
    assert [r[0] for r in page(db, 1, 12) if r[5]] == [3, 4]
    setting(db, "max_repeats_per_page", "3")
    assert [r[0] for r in page(db, 1, 12) if r[5]] == [3, 4, 5]
    setting(db, "inventory_waterline", "10")       # 18 unseen is plenty now: no repeats
    assert not [r for r in page(db, 1, 12) if r[5]]
    setting(db, "inventory_waterline", "24")
    setting(db, "max_repeats_per_page", "0")        # repeats off: the session ends with unseen inventory
    rows = page(db, 1, 12)
    more = page(db, 1, 12, rows[0][7])
    assert not [r for r in rows + more if r[5]] and len(more) == 6
    assert page(db, 1, 12, more[0][7]) == []


def test_max_duration_and_max_posts_per_author(db):
    for i in range(1, 11):
        add_post(db, i, author_id=50 if i <= 6 else 60 + i, duration_ms=100_000 if i == 10 else 10_000,
                 category=["art", "music"][i % 2])
    setting(db, "max_category_share", "1")
    assert 10 in [r[1] for r in page(db, 1, 10)]
    setting(db, "max_duration_ms", "60000")
    assert 10 not in [r[1] for r in page(db, 1, 10)]
    rows = page(db, 1, 5)
    assert sum(r[2] == 50 for r in rows) == 2
    setting(db, "max_posts_per_author", "1")
    assert sum(r[2] == 50 for r in page(db, 1, 4)) == 1


def test_session_lifetime(db):
    world(db, 20)
    setting(db, "session_lifetime", "1 second")
    rows = page(db, 1, 5)
    # the session lives exactly the setting's lifetime from its page (one now() per call)
    assert db.execute("SELECT expires_at - created_at FROM feed.feed_sessions").fetchone()[0].total_seconds() == 1
    # once that has passed (aged here, no waiting), the cursor is refused
    db.execute("UPDATE feed.feed_sessions SET expires_at = expires_at - interval '1 minute'")
    with pytest.raises(psycopg.Error) as excinfo:
        page(db, 1, 5, rows[0][7])
    assert excinfo.value.sqlstate == "22023"


@pytest.mark.parametrize("name,column", [("trending_weight_likes", "like_count"),
                                         ("trending_weight_comments", "comment_count"),
                                         ("trending_weight_shares", "share_count"),
                                         ("trending_weight_gifts", "gift_amount"),
                                         ("trending_weight_tips", "tip_amount"),
                                         ("gravity", None)])
def test_trending_weights_and_gravity(db, name, column):
    add_post(db, 1, age="3 hours", **({column: 2} if column else {"like_count": 2}))
    db.execute("SELECT feed.refresh_trending_scores()")
    before = db.execute("SELECT trending_score FROM feed.posts").fetchone()[0]
    setting(db, name, "0.5" if name == "gravity" else "100")
    db.execute("SELECT feed.refresh_trending_scores()")
    assert db.execute("SELECT trending_score FROM feed.posts").fetchone()[0] > before


def test_trending_window(db):
    add_post(db, 1, age="3 days", like_count=5)
    db.execute("UPDATE feed.posts SET trending_score = 0")
    setting(db, "trending_window", "1 day")
    db.execute("SELECT feed.refresh_trending_scores(NULL)") if False else None
    db.execute("SELECT feed.refresh_trending_scores(feed._setting_interval('trending_window'))")
    assert db.execute("SELECT trending_score FROM feed.posts").fetchone()[0] == 0
    setting(db, "trending_window", "7 days")
    db.execute("SELECT feed.refresh_trending_scores(feed._setting_interval('trending_window'))")
    assert db.execute("SELECT trending_score FROM feed.posts").fetchone()[0] > 0


def test_ema_alpha(db):
    add_post(db, 1)
    add_post(db, 2)
    rates = []
    for alpha in ("0.2", "0.5"):
        db.execute("DELETE FROM feed.user_signals")
        setting(db, "ema_alpha", alpha)
        db.execute("SELECT feed.record_watch_progress(1, 1, 1000, 10000, true)")
        db.execute("SELECT feed.record_watch_progress(1, 2, 1000, 10000, false)")
        rates.append(db.execute("SELECT like_rate FROM feed.user_signals WHERE user_id = 1").fetchone()[0])
    assert rates == [pytest.approx(0.8), pytest.approx(0.5)]


def test_rising_window(db):
    for i in range(1, 21):
        add_post(db, i, author_id=200 + i, age="3 days", like_count=100)
    add_post(db, 99, author_id=999, age="2 hours")
    blingram = {"profile": "blingram"}
    assert 99 not in [r[1] for r in page(db, 1, 10, None, blingram) if r[4] == "rising"]
    setting(db, "rising_window", "3 hours")
    assert [r[1] for r in page(db, 1, 10, None, blingram) if r[4] == "rising"] == [99]


def test_viewer_claim(db):
    db.execute("SET LOCAL request.jwt.claims = '{\"sub\": \"7\", \"uid\": \"42\"}'") if False else None
    db.execute("SELECT set_config('request.jwt.claims', '{\"sub\": \"7\", \"uid\": \"42\"}', false)")
    assert db.execute("SELECT feed.current_viewer()").fetchone()[0] == 7
    setting(db, "viewer_claim", "uid")
    assert db.execute("SELECT feed.current_viewer()").fetchone()[0] == 42
