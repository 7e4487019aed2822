"""JSON views over pgfeed, through its Python client on Django's own connection.

The views rank nothing: the page comes from feed.get_personalized_feed, and the
app only adds its own columns (the post's body) to the ranked ids.
"""

import json

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from pgfeed import Feed, InvalidArgument, NotFound, PermissionDenied, PgfeedError

from .models import Post

STATUS = {InvalidArgument: 400, NotFound: 404, PermissionDenied: 403}


def pgfeed() -> Feed:
    """The client on the request's database connection (Django's psycopg 3 connection)."""
    connection.ensure_connection()
    return Feed(connection.connection)


def error_response(error: PgfeedError) -> JsonResponse:
    return JsonResponse({"error": error.message, "sqlstate": error.sqlstate}, status=STATUS.get(type(error), 500))


def viewer(request):
    return request.user.pk if request.user.is_authenticated else None


@require_GET
def feed_page(request):
    """GET /feed/?size=12&after=<next_cursor>&mode=&profile= : a page as JSON."""
    context = {key: request.GET[key] for key in ("mode", "profile", "device", "connection") if key in request.GET}
    try:
        size = int(request.GET.get("size", 12))
    except ValueError:
        return JsonResponse({"error": "size: not an integer"}, status=400)
    try:
        page = pgfeed().page(viewer(request), size=size, after=request.GET.get("after") or None, **context)
    except PgfeedError as error:
        return error_response(error)
    posts = Post.objects.in_bulk(page.post_ids)
    items = [{
        "rank": item.rank,
        "post_id": item.post_id,
        "author_id": item.author_id,
        "body": posts[item.post_id].body if item.post_id in posts else None,
        "category": posts[item.post_id].category if item.post_id in posts else None,
        "source": item.source,
        "is_repeat": item.is_repeat,
        "score": item.score,
        "why": item.reasons.get("contributions", {}),
    } for item in page]
    return JsonResponse({"items": items, "next_cursor": page.next_cursor})


def _require_login(request):
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first"}, status=401)
    return None


@require_POST
def like(request, post_id: int):
    """POST /posts/<id>/like/ : the like goes through pgfeed (counters, trending, taste at once)."""
    if (denied := _require_login(request)) is not None:
        return denied
    try:
        interaction_id = pgfeed().record(request.user.pk, post_id, "like")
    except PgfeedError as error:
        return error_response(error)
    return JsonResponse({"interaction_id": interaction_id})


@require_POST
def seen(request):
    """POST /feed/seen/ {"post_ids": [...], "session": "..."} : what the screen showed (the cooldown)."""
    if (denied := _require_login(request)) is not None:
        return denied
    try:
        body = json.loads(request.body or b"{}")
        post_ids = [int(p) for p in body.get("post_ids", [])]
    except (ValueError, TypeError, AttributeError):
        return JsonResponse({"error": "post_ids: a JSON list of integers"}, status=400)
    try:
        count = pgfeed().impressions(request.user.pk, post_ids, session_id=body.get("session"))
    except PgfeedError as error:
        return error_response(error)
    return JsonResponse({"recorded": count})


@require_GET
def explain(request, post_id: int):
    """GET /posts/<id>/explain/ : every component of this post's score for the viewer."""
    try:
        return JsonResponse(pgfeed().explain(viewer(request), post_id))
    except PgfeedError as error:
        return error_response(error)
