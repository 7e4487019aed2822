"""The example site end to end: app tables mirrored into feed.*, the feed as JSON,
likes recorded through the client. A real PostgreSQL; nothing mocked."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.utils import ProgrammingError

from social.models import Follow, Post

pytestmark = pytest.mark.django_db


def feed_row(post_id):
    with connection.cursor() as cur:
        cur.execute("SELECT author_id, category, post_type, duration_ms, is_deleted, like_count"
                    " FROM feed.posts WHERE post_id = %s", [post_id])
        return cur.fetchone()


def feed_follows():
    with connection.cursor() as cur:
        cur.execute("SELECT follower_id, followee_id FROM feed.follows ORDER BY 1, 2")
        return cur.fetchall()


@pytest.fixture
def people():
    alice = User.objects.create_user("alice", password="x")
    bob = User.objects.create_user("bob", password="x")
    carol = User.objects.create_user("carol", password="x")
    return alice, bob, carol


@pytest.fixture
def world(people):
    alice, bob, carol = people
    Follow.objects.create(follower=alice, followee=bob)
    posts = []
    for i in range(12):
        author = bob if i % 2 == 0 else carol
        posts.append(Post.objects.create(author=author, body=f"post {i}", category=["art", "music", "jazz"][i % 3],
                                         kind="video" if i % 3 == 0 else "image",
                                         duration_ms=30000 if i % 3 == 0 else None))
    return people, posts


# ---------------------------------------------------------------------------
# the triggers keep feed.posts and feed.follows in step


def test_posts_are_mirrored_on_insert_update_delete(people):
    alice, bob, _ = people
    post = Post.objects.create(author=bob, body="hello", category="art", kind="video", duration_ms=15000)
    assert feed_row(post.pk) == (bob.pk, "art", "video", 15000, False, 0)
    post.category = "music"
    post.save()
    assert feed_row(post.pk)[1] == "music"
    post.hidden = True
    post.save()
    assert feed_row(post.pk)[4] is True
    post.hidden = False
    post.save()
    post_id = post.pk
    post.delete()
    assert feed_row(post_id)[4] is True  # kept, marked deleted: never shown again
    empty = Post.objects.create(author=bob, category="")
    assert feed_row(empty.pk)[1] == "general"


def test_follows_are_mirrored(people):
    alice, bob, carol = people
    follow = Follow.objects.create(follower=alice, followee=bob)
    Follow.objects.create(follower=carol, followee=bob)
    assert feed_follows() == sorted([(alice.pk, bob.pk), (carol.pk, bob.pk)])
    follow.followee = carol
    follow.save()
    assert feed_follows() == sorted([(alice.pk, carol.pk), (carol.pk, bob.pk)])
    follow.delete()
    assert feed_follows() == [(carol.pk, bob.pk)]


# ---------------------------------------------------------------------------
# the views


def test_feed_view_returns_a_ranked_page_with_the_apps_columns(client, world):
    (alice, bob, carol), posts = world
    client.force_login(alice)
    response = client.get("/feed/", {"size": 6})
    assert response.status_code == 200
    data = response.json()
    assert len(data["items"]) == 6 and data["next_cursor"]
    assert [item["rank"] for item in data["items"]] == list(range(1, 7))
    by_id = {p.pk: p for p in posts}
    for item in data["items"]:
        assert item["body"] == by_id[item["post_id"]].body
        assert item["author_id"] == by_id[item["post_id"]].author_id
        assert isinstance(item["why"], dict)
    assert all(isinstance(item["source"], str) and isinstance(item["score"], float) for item in data["items"])
    more = client.get("/feed/", {"size": 6, "after": data["next_cursor"]}).json()
    first_ids = {i["post_id"] for i in data["items"]}
    assert len(more["items"]) == 6 and not first_ids & {i["post_id"] for i in more["items"]}
    assert first_ids | {i["post_id"] for i in more["items"]} == set(by_id)
    trending = client.get("/feed/", {"size": 4, "mode": "trending"}).json()
    assert {i["source"] for i in trending["items"]} <= {"trending", "repeat"}


def test_anonymous_visitors_get_the_chronological_feed(client, world):
    data = client.get("/feed/", {"size": 5}).json()
    assert len(data["items"]) == 5 and {i["source"] for i in data["items"]} <= {"chronological", "repeat"}


def test_hidden_and_deleted_posts_leave_the_feed(client, world):
    (alice, bob, carol), posts = world
    posts[0].hidden = True
    posts[0].save()
    posts[1].delete()
    client.force_login(alice)
    ids = {i["post_id"] for i in client.get("/feed/", {"size": 20}).json()["items"]}
    assert ids == {p.pk for p in posts[2:]}


def test_bad_arguments_are_400_with_the_sqlstate(client, world):
    response = client.get("/feed/", {"size": 0})
    assert response.status_code == 400 and response.json()["sqlstate"] == "22023"
    assert client.get("/feed/", {"after": "v1.forged"}).status_code == 400
    assert client.get("/feed/", {"mode": "sideways"}).status_code == 400
    assert client.get("/feed/", {"size": "many"}).status_code == 400


def test_likes_go_through_the_client(client, world):
    (alice, bob, carol), posts = world
    assert client.post(f"/posts/{posts[0].pk}/like/").status_code == 401
    client.force_login(alice)
    response = client.post(f"/posts/{posts[0].pk}/like/")
    assert response.status_code == 200 and isinstance(response.json()["interaction_id"], int)
    assert feed_row(posts[0].pk)[5] == 1
    missing = client.post("/posts/999999/like/")
    assert missing.status_code == 404 and missing.json()["sqlstate"] == "23503"
    # the liked post counts as seen: it leaves alice's next feeds (cooldown)
    ids = [i["post_id"] for i in client.get("/feed/", {"size": 6}).json()["items"]]
    assert posts[0].pk not in ids
    why = client.get(f"/posts/{posts[2].pk}/explain/")
    assert why.status_code == 200 and isinstance(why.json(), dict)


def test_seen_records_impressions(client, world):
    (alice, bob, carol), posts = world
    client.force_login(alice)
    shown = client.get("/feed/", {"size": 4}).json()["items"]
    response = client.post("/feed/seen/", data=json.dumps({"post_ids": [i["post_id"] for i in shown],
                                                           "session": "s1"}), content_type="application/json")
    assert response.status_code == 200 and response.json() == {"recorded": 4}
    fresh = client.get("/feed/", {"size": 8}).json()["items"]
    assert not {i["post_id"] for i in shown} & {i["post_id"] for i in fresh if not i["is_repeat"]}
    bad = client.post("/feed/seen/", data="[1", content_type="application/json")
    assert bad.status_code == 400


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_as_in_production(client, people):
    """Outside a test transaction (Django's autocommit, as a real request runs)."""
    alice, bob, _ = people
    post = Post.objects.create(author=bob, body="live", category="art")
    try:
        client.force_login(alice)
        assert connection.connection.autocommit
        items = client.get("/feed/", {"size": 3}).json()["items"]
        assert [i["post_id"] for i in items] == [post.pk]
        assert client.post(f"/posts/{post.pk}/like/").status_code == 200
        assert feed_row(post.pk)[5] == 1
    finally:
        post.delete()  # the trigger marks it deleted in feed.posts (Django's flush truncates without triggers)


def test_as_an_app_role_with_pgfeed_app_only(client, people):
    """What the README asks of production: the app's database user, not a superuser, with
    `GRANT pgfeed_app` and its own tables. (Role and grants are rolled back with the test.)"""
    alice, bob, _ = people
    with connection.cursor() as cur:
        cur.execute("CREATE ROLE feedsite_app_test NOLOGIN")
        cur.execute("GRANT pgfeed_app TO feedsite_app_test")
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO feedsite_app_test")
        cur.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO feedsite_app_test")
        cur.execute("SET LOCAL ROLE feedsite_app_test")
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == "feedsite_app_test"
    post = Post.objects.create(author=bob, body="as the app", category="art")
    Follow.objects.create(follower=alice, followee=bob)
    assert feed_row(post.pk)[:2] == (bob.pk, "art")
    client.force_login(alice)
    items = client.get("/feed/", {"size": 3}).json()["items"]
    assert [i["post_id"] for i in items] == [post.pk]
    assert client.post(f"/posts/{post.pk}/like/").status_code == 200
    assert feed_row(post.pk)[5] == 1
    with connection.cursor() as cur:  # the engine's own tables stay closed to the app
        cur.execute("SAVEPOINT before_denied")
        with pytest.raises(ProgrammingError) as excinfo:
            cur.execute("SELECT count(*) FROM feed.settings")
        cur.execute("ROLLBACK TO SAVEPOINT before_denied")
    assert "permission denied" in str(excinfo.value)
