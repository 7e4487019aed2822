"""Keep pgfeed's tables in step with the app's own, with `pgfeed adopt`'s SQL:
feed.adopt_sql writes triggers on social_post and social_follow that copy every
INSERT, UPDATE and DELETE into feed.posts and feed.follows, plus a one-time
backfill of the rows that exist already; this migration runs that text.

The same thing from a shell (or `--sql` for a reviewed script):

    pgfeed adopt posts --table social_post --id id --author author_id --created-at created_at \\
        --category category --post-type kind --duration-ms duration_ms --deleted hidden
    pgfeed adopt follows --table social_follow --follower follower_id --followee followee_id \\
        --created-at created_at

pgfeed must be installed first (`pgfeed migrate` on the same database); this
migration stops with a clear message otherwise. The role that runs it calls
feed.adopt_sql (pgfeed_admin, or the role that ran `pgfeed migrate`) and owns the
app's tables; the triggers then run as that role, so the app's own database user
needs no rights on feed.* to keep it in step.
"""

import json

from django.db import migrations

# app column for each of pgfeed's keys (docs/adopt.md)
ADOPTED = [
    ("posts", "Post", {"id": "id", "author": "author_id", "created_at": "created_at", "category": "category",
                       "post_type": "kind", "duration_ms": "duration_ms", "deleted": "hidden"}),
    ("follows", "Follow", {"follower": "follower_id", "followee": "followee_id", "created_at": "created_at"}),
]


def _adopt(apps, schema_editor, remove: bool) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('feed.adopt_sql(text, regclass, jsonb, boolean)') IS NOT NULL")
        if not cursor.fetchone()[0]:
            raise RuntimeError("pgfeed is not installed in this database: run `pgfeed migrate --dsn ...` on it, "
                               "then migrate again")
        for kind, model, columns in ADOPTED:
            table = schema_editor.quote_name(apps.get_model("social", model)._meta.db_table)
            cursor.execute("SELECT feed.adopt_sql(%s, %s::regclass, %s::jsonb, %s)",
                           [kind, table, json.dumps(columns), remove])
            cursor.execute(cursor.fetchone()[0])


def adopt(apps, schema_editor):
    _adopt(apps, schema_editor, remove=False)


def unadopt(apps, schema_editor):
    _adopt(apps, schema_editor, remove=True)


class Migration(migrations.Migration):
    dependencies = [("social", "0001_initial")]

    operations = [migrations.RunPython(adopt, unadopt)]
