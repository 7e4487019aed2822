"""pgfeed import: CSV files of posts, follows and interactions; all or nothing, with the
line of the first bad row; imported interactions leave the state the write functions would."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest

from pgfeed.importer import ImportFailed, import_csv

from .helpers import add_post, fingerprint, trending
from .test_rebuild import DERIVED, TASTE, assert_same_taste, derived, interact, watch, world


def write(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def dims(db) -> int:
    return db.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'feed.posts'::regclass"
                      " AND attname = 'embedding'").fetchone()[0]


# ---------------------------------------------------------------------------
# good files

def test_posts_with_every_column(db, db_dsn, tmp_path):
    vector = "[" + ",".join(["0.5"] * dims(db)) + "]"
    path = write(tmp_path, "post_id,author_id,category,post_type,created_at,collective_id,visibility,is_deleted,"
                           "media_ready,duration_ms,embedding\n"
                           f"10,1,art,video,2026-01-02 03:04:05+00,7,shadow_ban,false,no,90000,\"{vector}\"\n"
                           "11,2,jazz,,,,,,,,\n")
    result = import_csv(db_dsn, "posts", path)
    assert (result["rows"], result["inserted"], result["skipped"]) == (2, 2, 0)
    rows = db.execute("SELECT post_id, author_id, category, post_type, created_at::text, collective_id, visibility,"
                      " is_deleted, media_ready, duration_ms, embedding IS NOT NULL, like_count"
                      " FROM feed.posts ORDER BY 1").fetchall()
    assert rows[0] == (10, 1, "art", "video", "2026-01-02 03:04:05+00", 7, "shadow_ban", False, False, 90000,
                       True, 0)
    assert rows[1][:4] == (11, 2, "jazz", "post") and rows[1][5:] == (None, "public", False, True, None, False, 0)
    # a new post starts with its formula score, as if the host had inserted it
    created, score = db.execute("SELECT created_at, trending_score FROM feed.posts WHERE post_id = 11").fetchone()
    assert score == pytest.approx(trending(0, 0, 0, 0, 0, created, created), rel=1e-6)


def test_posts_columns_in_any_order_and_a_bom(db, db_dsn, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffcategory,post_id,author_id\r\nart,1,9\r\n\"books, rare\",2,9\r\n".encode())
    assert import_csv(db_dsn, "posts", path)["inserted"] == 2
    assert db.execute("SELECT post_id, category FROM feed.posts ORDER BY 1").fetchall() == [(1, "art"),
                                                                                            (2, "books, rare")]


def test_follows_skip_the_pairs_already_there(db, db_dsn, tmp_path):
    db.execute("INSERT INTO feed.follows VALUES (1, 2, '2025-01-01')")
    path = write(tmp_path, "followee_id,follower_id,created_at\n2,1,\n3,1,2026-03-01T00:00:00Z\n1,3,\n")
    result = import_csv(db_dsn, "follows", path)
    assert (result["rows"], result["inserted"], result["skipped"]) == (3, 2, 1)
    assert db.execute("SELECT follower_id, followee_id, created_at::date::text FROM feed.follows"
                      " ORDER BY 1, 2").fetchall()[:2] == [(1, 2, "2025-01-01"), (1, 3, "2026-03-01")]


def test_interactions_update_counters_and_signals(db, db_dsn, tmp_path):
    add_post(db, 1, author_id=50, category="jazz", post_type="video", duration_ms=10000)
    path = write(tmp_path, "user_id,post_id,action,value_amount,time_spent_seconds,created_at,watch_ratio\n"
                           "7,1,view,,12,2026-01-01 10:00:00+00,0.5\n"
                           "7,1,like,0,,2026-01-01 10:00:01+00,\n"
                           "8,1,gift,2.50,,2026-01-01 10:00:02+00,\n"
                           "8,1,unlike,,,2026-01-01 10:00:03+00,\n"
                           "9,1,report,,,,\n")
    result = import_csv(db_dsn, "interactions", path)
    assert result["inserted"] == 5 and result["rebuild"]["seen_posts"] == 3
    post = db.execute("SELECT like_count, view_count, gift_amount, report_count, watch_count, watch_ratio_sum"
                      " FROM feed.posts").fetchone()
    assert post == (1, 1, Decimal("2.50"), 1, 1, 0.5)  # 7 liked; 8's unlike cancels only 8's own like
    assert db.execute("SELECT observations, watches, watch_ratio FROM feed.user_signals WHERE user_id = 7"
                      ).fetchone() == (2, 1, 0.5)
    assert db.execute("SELECT reason FROM feed.hidden_posts WHERE user_id = 9").fetchone() == ("report",)
    # rows without created_at get the import's time (that of its rebuild)
    assert db.execute("SELECT i.created_at = j.last_run_at FROM feed.interactions i, feed.job_runs j"
                      " WHERE i.user_id = 9 AND j.job = 'rebuild'").fetchone() == (True,)


def test_imported_interactions_equal_the_write_path(db, db_dsn, tmp_path):
    """Events recorded through the write functions, exported as CSV, wiped and
    imported again: the log and every derived table come back the same."""
    world(db)
    for user, post, action in [(7, 1, "like"), (7, 1, "unlike"), (8, 2, "comment"), (7, 3, "dislike"),
                               (9, 4, "view"), (8, 2, "like"), (8, 2, "unlike"), (8, 2, "unlike"), (8, 2, "like"),
                               (1, 2, "share"), (9, 1, "save")]:
        interact(db, user, post, action)
    interact(db, 9, 3, "tip", Decimal("4.20"))
    watch(db, 7, 1, 15000, liked=True, shared=True)
    watch(db, 9, 3, 2000)
    # a CSV has no called_at (the clock time of a live call): an imported row's is its created_at
    log_query = ("SELECT interaction_id, user_id, post_id, action, value_amount, time_spent_seconds, created_at,"
                 " watch_ratio FROM feed.interactions ORDER BY interaction_id")
    log = db.execute(log_query).fetchall()
    expected, expected_taste = derived(db), db.execute(TASTE).fetchall()

    buffer = io.BytesIO()
    with db.cursor().copy("COPY (SELECT user_id, post_id, action, value_amount, time_spent_seconds, created_at,"
                          " watch_ratio FROM feed.interactions ORDER BY interaction_id)"
                          " TO STDOUT WITH (FORMAT csv, HEADER true)") as copy:
        for chunk in copy:
            buffer.write(chunk)
    path = tmp_path / "log.csv"
    path.write_bytes(buffer.getvalue())
    db.execute("TRUNCATE feed.interactions RESTART IDENTITY")
    db.execute("TRUNCATE " + ", ".join(f"feed.{t}" for t in DERIVED if t != "posts") + ", feed.user_taste")
    db.execute("UPDATE feed.posts SET like_count = 0, comment_count = 0, share_count = 0, view_count = 0,"
               " gift_amount = 0, tip_amount = 0, praise_count = 0, trophy_count = 0, save_count = 0,"
               " report_count = 0, watch_count = 0, watch_ratio_sum = 0, trending_score = 0")

    import_csv(db_dsn, "interactions", path)
    assert db.execute(log_query).fetchall() == log
    got = derived(db)
    for table in DERIVED:
        if table == "posts":  # trending_score: the formula as of the import, not of each event
            assert [r[:-1] for r in got[table]] == [r[:-1] for r in expected[table]]
        elif table == "user_post_state":  # called_at: see above
            assert [r[:4] + r[5:] for r in got[table]] == [r[:4] + r[5:] for r in expected[table]]
        else:
            assert got[table] == expected[table], table
    assert_same_taste(db.execute(TASTE).fetchall(), expected_taste)
    rebuilt_at = db.execute("SELECT last_run_at FROM feed.job_runs WHERE job = 'rebuild'").fetchone()[0]
    for post_id, likes, comments, shares, _, gift, tip, *_, score in got["posts"]:
        created = db.execute("SELECT created_at FROM feed.posts WHERE post_id = %s", [post_id]).fetchone()[0]
        if likes or comments or shares or gift or tip:
            assert score == pytest.approx(trending(likes, comments, shares, gift, tip, created, rebuilt_at),
                                          rel=1e-12)


# ---------------------------------------------------------------------------
# bad files: the first bad row's line, and nothing imported

INTERACTIONS = "user_id,post_id,action,value_amount,time_spent_seconds,created_at,watch_ratio\n"
GOOD = "7,1,like,,,,\n"
BAD_FILES = [
    ("unknown action", "interactions", INTERACTIONS + GOOD + GOOD + "7,1,poke,,,,\n" + GOOD, 4, "action: unknown"),
    ("missing action", "interactions", INTERACTIONS + GOOD + "7,1, ,,,,\n", 3, "action: missing"),
    ("bad user id", "interactions", INTERACTIONS + "x7,1,like,,,,\n", 2, "user_id:"),
    ("id out of range", "interactions", INTERACTIONS + GOOD + "7,99999999999999999999,like,,,,\n", 3, "post_id:"),
    ("bad number", "interactions", INTERACTIONS + GOOD + "7,1,gift,1.2.3,,,\n", 3, "value_amount:"),
    ("missing post", "interactions", INTERACTIONS + GOOD + "7,404,like,,,,\n", 3, "post_id: post 404 does not"),
    ("gift without amount", "interactions", INTERACTIONS + "7,1,gift,,,,\n", 2, "value_amount: must be positive"),
    ("negative tip", "interactions", INTERACTIONS + GOOD + "7,1,tip,-3,,,\n", 3, "value_amount: must be positive"),
    ("zero gift", "interactions", INTERACTIONS + GOOD + "7,1,gift,0.00,,,\n", 3, "value_amount: must be positive"),
    ("amount on a like", "interactions", INTERACTIONS + GOOD + "7,1,like,2,,,\n", 3, "value_amount: must be 0"),
    ("amount too precise", "interactions", INTERACTIONS + "7,1,tip,0.001,,,\n", 2, "value_amount:"),
    ("amount too large", "interactions", INTERACTIONS + "7,1,tip,1e12,,,\n", 2, "value_amount:"),
    ("negative time", "interactions", INTERACTIONS + GOOD + "7,1,view,,-5,,\n", 3, "time_spent_seconds:"),
    ("bad time", "interactions", INTERACTIONS + GOOD + "7,1,view,,,2026-13-45,\n", 3, "created_at:"),
    ("infinite time", "interactions", INTERACTIONS + GOOD + "7,1,view,,,infinity,\n", 3, "created_at:"),
    ("ratio out of range", "interactions", INTERACTIONS + "7,1,view,,,,1.5\n", 2, "watch_ratio:"),
    ("ratio on a like", "interactions", INTERACTIONS + "7,1,like,,,,0.5\n", 2, "watch_ratio:"),
    ("too many values", "interactions", INTERACTIONS + GOOD + "7,1,like,,,,,9\n", 3, "malformed CSV"),
    ("too few values", "interactions", INTERACTIONS + GOOD + GOOD + "7,1\n", 4, "malformed CSV"),
    ("line numbers count quoted newlines", "posts",
     "post_id,author_id,category\n5,1,\"multi\nline\"\n6,1,art\n5,1,x\n", 5, "post_id: post 5 appears"),
    ("duplicate post", "posts", "post_id,author_id,category\n5,1,art\n6,1,art\n5,2,jazz\n", 4,
     "post_id: post 5 appears more than once"),
    ("existing post twice", "posts", "post_id,author_id,category\n1,1,art\n5,1,art\n1,2,jazz\n", 4,
     "post_id: post 1 appears more than once"),
    ("existing post, bad value", "posts", "post_id,author_id,category,visibility\n5,1,art,\n1,1,art,hidden\n", 3,
     "visibility:"),
    ("empty category", "posts", "post_id,author_id,category\n5,1,\"  \"\n", 2, "category: missing"),
    ("bad visibility", "posts", "post_id,author_id,category,visibility\n5,1,art,hidden\n", 2, "visibility:"),
    ("bad boolean", "posts", "post_id,author_id,category,is_deleted\n5,1,art,maybe\n", 2, "is_deleted:"),
    ("negative duration", "posts", "post_id,author_id,category,duration_ms\n5,1,art,-1\n", 2, "duration_ms:"),
    ("short embedding", "posts", "post_id,author_id,category,embedding\n5,1,art,\"[1,2,3]\"\n", 2, "embedding:"),
    ("bad embedding", "posts", "post_id,author_id,category,embedding\n5,1,art,\"[1,x]\"\n", 2, "embedding:"),
    ("self follow", "follows", "follower_id,followee_id\n1,2\n3,3\n", 3, "followee_id: user 3 cannot follow"),
    ("duplicate follow", "follows", "follower_id,followee_id\n1,2\n2,1\n01,2\n", 4, "followee_id: 1 already"),
    ("bad follower", "follows", "follower_id,followee_id\n1.5,2\n", 2, "follower_id:"),
]


@pytest.mark.parametrize("label,kind,text,line,message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_a_bad_row_imports_nothing_and_names_its_line(db, db_dsn, tmp_path, label, kind, text, line, message):
    add_post(db, 1)
    interact(db, 3, 1, "like")
    before = fingerprint(db)
    path = write(tmp_path, text)
    with pytest.raises(ImportFailed) as excinfo:
        import_csv(db_dsn, kind, path)
    assert excinfo.value.line == line
    assert excinfo.value.message.startswith(message), excinfo.value.message
    assert f"{path}:{line}: " in str(excinfo.value)
    assert fingerprint(db) == before


@pytest.mark.parametrize("kind,text,message", [
    ("interactions", "user_id,post_id,action,colour\n7,1,like,red\n", "unknown column 'colour'"),
    ("interactions", "user_id,action\n7,like\n", "missing required column(s) post_id"),
    ("posts", "post_id,post_id,author_id,category\n", "column 'post_id' appears twice"),
    ("follows", "", "the file is empty"),
])
def test_a_bad_header_imports_nothing(db, db_dsn, tmp_path, kind, text, message):
    before = fingerprint(db)
    with pytest.raises(ImportFailed) as excinfo:
        import_csv(db_dsn, kind, write(tmp_path, text))
    assert excinfo.value.line == 1 and message in excinfo.value.message
    assert fingerprint(db) == before


def test_unknown_kind_and_missing_file(db_dsn, tmp_path):
    with pytest.raises(ImportFailed, match="kind: unknown kind 'likes'"):
        import_csv(db_dsn, "likes", write(tmp_path, "a\n"))
    with pytest.raises(ImportFailed, match="no such file"):
        import_csv(db_dsn, "posts", tmp_path / "nope.csv")


def test_import_sql_refuses_an_unknown_kind(db):
    with pytest.raises(Exception) as excinfo:
        db.execute("SELECT * FROM feed._import_columns('likes')")
    assert excinfo.value.sqlstate == "22023"
    assert excinfo.value.diag.message_primary.startswith("p_kind")


def test_a_small_import_into_a_large_log_rebuilds_only_what_it_touched(db, db_dsn, tmp_path):
    """With a per-viewer taste rebuild available (stubbed here), an import ten times
    smaller than the log rebuilds its viewers and posts only, and ends where a full
    rebuild would."""
    if db.execute("SELECT to_regprocedure('feed._rebuild_taste_vectors(bigint[])')").fetchone()[0] is None:
        db.execute("CREATE FUNCTION feed._rebuild_taste_vectors(bigint[]) RETURNS integer LANGUAGE sql"
                   " AS 'SELECT 0'")
    world(db)
    for i in range(40):
        interact(db, 10 + i % 7, 1 + i % 4, ["view", "like", "unlike", "comment", "save"][i % 5])
    path = write(tmp_path, "user_id,post_id,action\n11,2,like\n99,3,share\n11,2,unlike\n")
    result = import_csv(db_dsn, "interactions", path)
    assert result["rebuild_scope"] == "touched"
    assert db.execute("SELECT count(*) FROM feed.job_runs WHERE job = 'rebuild_partial'").fetchone() == (1,)
    with db.transaction(force_rollback=True):
        db.execute("UPDATE feed.settings SET value = '0' WHERE name = 'heartbeat_min_change'")  # exact scores
        db.execute("SELECT feed.refresh_trending_scores('100 years')")
        partial = derived(db)
        db.execute("SELECT feed._rebuild_derived_state()")
        assert derived(db) == partial


# ---------------------------------------------------------------------------
# importing the same file again changes nothing

def test_posts_are_upserted_by_post_id(db, db_dsn, tmp_path):
    path = write(tmp_path, "post_id,author_id,category,post_type,duration_ms\n1,10,art,image,\n2,11,jazz,video,30000\n")
    first = import_csv(db_dsn, "posts", path)
    assert (first["rows"], first["inserted"], first["updated"], first["skipped"]) == (2, 2, 0, 0)
    interact(db, 7, 2, "like")
    before = fingerprint(db)
    again = import_csv(db_dsn, "posts", path)
    assert (again["rows"], again["inserted"], again["updated"], again["skipped"]) == (2, 0, 0, 2)
    assert fingerprint(db) == before
    # a changed file: post 2 changes category, its empty duration keeps the stored one; post 3 is new
    changed = write(tmp_path, "post_id,author_id,category,post_type,duration_ms\n"
                              "1,10,art,image,\n2,11,blues,,\n3,12,art,,\n", "changed.csv")
    result = import_csv(db_dsn, "posts", changed)
    assert (result["rows"], result["inserted"], result["updated"], result["skipped"]) == (3, 1, 1, 1)
    assert db.execute("SELECT post_id, author_id, category, post_type, duration_ms, like_count FROM feed.posts"
                      " ORDER BY 1").fetchall() == [(1, 10, "art", "image", None, 0),
                                                    (2, 11, "blues", "video", 30000, 1),
                                                    (3, 12, "art", "post", None, 0)]


def test_follows_imported_twice_are_there_once(db, db_dsn, tmp_path):
    path = write(tmp_path, "follower_id,followee_id,created_at\n1,2,2026-01-01\n1,3,\n")
    assert import_csv(db_dsn, "follows", path)["inserted"] == 2
    before = fingerprint(db)
    again = import_csv(db_dsn, "follows", path)
    assert (again["inserted"], again["skipped"]) == (0, 2)
    assert fingerprint(db) == before


def test_interactions_imported_twice_are_logged_once(db, db_dsn, tmp_path):
    add_post(db, 1, author_id=50)
    add_post(db, 2, author_id=51)
    rows = ("7,1,view,,12,2026-01-01 10:00:00+00,0.5\n"
            "7,1,view,,12,2026-01-01 10:00:00+00,0.5\n"  # two identical views: both are real
            "7,1,like,,,2026-01-01 10:00:01+00,\n"
            "8,2,gift,2.50,,2026-01-01 10:00:02+00,\n")
    path = write(tmp_path, INTERACTIONS + rows)
    assert import_csv(db_dsn, "interactions", path)["inserted"] == 4
    before = fingerprint(db)
    again = import_csv(db_dsn, "interactions", path)
    assert (again["rows"], again["inserted"], again["skipped"]) == (4, 0, 4)
    assert fingerprint(db) == before
    # a longer export of the same history: only the new rows are added
    longer = write(tmp_path, INTERACTIONS + rows + "7,1,view,,3,2026-01-01 10:00:00+00,0.5\n"
                   "9,1,like,,,2026-01-02 00:00:00+00,\n", "longer.csv")
    result = import_csv(db_dsn, "interactions", longer)
    assert (result["inserted"], result["skipped"]) == (2, 4)
    assert db.execute("SELECT count(*) FROM feed.interactions").fetchone()[0] == 6
    assert db.execute("SELECT like_count, view_count, gift_amount FROM feed.posts ORDER BY post_id").fetchall() == [
        (2, 3, Decimal("0.00")), (0, 0, Decimal("2.50"))]


def test_interactions_without_a_time_are_imported_once(db, db_dsn, tmp_path):
    """A row without created_at is known by its import key (the file up to that row):
    the same file again adds nothing, a longer export of it only its new rows."""
    add_post(db, 1, author_id=50)
    add_post(db, 2, author_id=51)
    rows = "7,1,view,4\n7,1,view,4\n7,1,like,\n8,2,comment,\n"  # the two views are two views
    path = write(tmp_path, "user_id,post_id,action,time_spent_seconds\n" + rows)
    first = import_csv(db_dsn, "interactions", path)
    assert (first["inserted"], first["skipped"]) == (4, 0)
    before = fingerprint(db)
    counters = db.execute("SELECT post_id, like_count, view_count, comment_count FROM feed.posts"
                          " ORDER BY 1").fetchall()
    assert counters == [(1, 1, 2, 0), (2, 0, 0, 1)]
    again = import_csv(db_dsn, "interactions", path)
    assert (again["rows"], again["inserted"], again["skipped"]) == (4, 0, 4)
    assert fingerprint(db) == before
    # the same history exported again later, with one more row at its end
    longer = write(tmp_path, "user_id,post_id,action,time_spent_seconds\n" + rows + "7,1,view,4\n", "longer.csv")
    grown = import_csv(db_dsn, "interactions", longer)
    assert (grown["inserted"], grown["skipped"]) == (1, 4)
    assert db.execute("SELECT view_count FROM feed.posts WHERE post_id = 1").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM feed.interactions").fetchone()[0] == 5
    # rows with created_at keep their own rule, beside these, in one file
    mixed = write(tmp_path, INTERACTIONS + "9,2,like,,,2026-01-01 10:00:00+00,\n9,2,view,,,,\n", "mixed.csv")
    assert import_csv(db_dsn, "interactions", mixed)["inserted"] == 2
    state = fingerprint(db)
    assert import_csv(db_dsn, "interactions", mixed)["inserted"] == 0
    assert fingerprint(db) == state
    assert db.execute("SELECT count(*) FROM feed.import_keys").fetchone()[0] == 6
    # another file is another history: its identical-looking row is new
    other = write(tmp_path, "user_id,post_id,action\n8,2,comment\n", "other.csv")
    assert import_csv(db_dsn, "interactions", other)["inserted"] == 1
    assert db.execute("SELECT comment_count FROM feed.posts WHERE post_id = 2").fetchone()[0] == 2


def test_the_import_key_is_the_running_hash_of_the_file(tmp_path):
    from pgfeed.importer import import_keys

    path = write(tmp_path, "user_id,post_id,action,created_at\n7,1,view,\n7,1,view,2026-01-01\n7,1,view, \n")
    keys = list(import_keys(path, ["user_id", "post_id", "action", "created_at"]))
    assert [record for record, _ in keys] == [1, 3]  # only the rows without a time
    assert keys[0][1] != keys[1][1] and all(len(key) == 32 for _, key in keys)
    longer = write(tmp_path, path.read_text() + "8,1,like,\n", "longer.csv")
    assert list(import_keys(longer, ["user_id", "post_id", "action", "created_at"]))[:2] == keys
    edited = write(tmp_path, path.read_text().replace("7,1,view,\n", "7,2,view,\n", 1), "edited.csv")
    assert not set(k for _, k in import_keys(edited, ["user_id", "post_id", "action", "created_at"])) & set(
        k for _, k in keys)


def test_import_command_prints_a_summary(db, db_dsn, tmp_path):
    from click.testing import CliRunner

    from pgfeed.cli import cli

    path = write(tmp_path, "post_id,author_id,category\n1,1,art\n2,1,[follows author]\n")
    first = CliRunner().invoke(cli, ["import", "posts", str(path), "--dsn", db_dsn], catch_exceptions=False)
    assert first.exit_code == 0
    assert first.stdout.startswith("imported posts from data.csv: 2 rows, 2 new, 0 updated, 0 already there (")
    again = CliRunner().invoke(cli, ["import", "posts", str(path), "--dsn", db_dsn, "--json"], catch_exceptions=False)
    result = json.loads(again.stdout)
    assert (result["rows"], result["inserted"], result["updated"], result["skipped"]) == (2, 0, 0, 2)
    bad = CliRunner().invoke(cli, ["import", "posts", str(write(tmp_path, "post_id,author_id,category\nx,1,art\n")),
                                   "--dsn", db_dsn])
    assert bad.exit_code == 1 and bad.stderr.startswith("pgfeed: error: ") and ":2: post_id:" in bad.stderr
