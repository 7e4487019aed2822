"""pgfeed: a personalized feed-ranking engine that lives inside PostgreSQL.

The ranking lives in SQL (``sql/functions``); this package only installs it,
migrates it, and offers a command line (``pgfeed``) around it.
"""

__version__ = "0.1.0"
