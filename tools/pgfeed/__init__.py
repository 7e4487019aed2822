"""pgfeed: a personalized feed-ranking engine that lives inside PostgreSQL.

The ranking lives in SQL (``sql/functions``); this package installs it,
migrates it, offers a command line (``pgfeed``) around it, and a thin typed
client that calls its functions (``Feed``, ``AsyncFeed``; see pgfeed.client).
"""

__version__ = "0.1.0"

from pgfeed.client import (  # noqa: E402
    AsyncFeed,
    Feed,
    FeedItem,
    InvalidArgument,
    NotFound,
    Page,
    PermissionDenied,
    PgfeedError,
    SimilarPost,
)

__all__ = [
    "AsyncFeed",
    "Feed",
    "FeedItem",
    "InvalidArgument",
    "NotFound",
    "Page",
    "PermissionDenied",
    "PgfeedError",
    "SimilarPost",
    "__version__",
]
