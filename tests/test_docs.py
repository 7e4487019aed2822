"""The reference documents every public function, setting and shipped profile."""

from __future__ import annotations

from pathlib import Path

REFERENCE = (Path(__file__).resolve().parent.parent / "docs" / "reference.md").read_text()


def test_every_public_function_is_documented(db):
    names = {r[0] for r in db.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'feed'::regnamespace"
        " AND p.proname NOT LIKE '\\_%' AND p.prokind = 'f'").fetchall()}
    assert names, "the public functions exist"
    missing = sorted(n for n in names if f"feed.{n}(" not in REFERENCE)
    assert missing == []


def test_every_setting_is_documented(db):
    names = [r[0] for r in db.execute("SELECT name FROM feed.settings").fetchall()]
    missing = [n for n in names if f"`{n}`" not in REFERENCE and not any(
        n.startswith(prefix) and f"`{prefix}" in REFERENCE for prefix in ("trending_weight_",))]
    assert missing == []


def test_every_shipped_profile_is_documented(db):
    names = [r[0] for r in db.execute("SELECT name FROM feed.ranking_profiles").fetchall()]
    assert names and [n for n in names if f"| `{n}` |" not in REFERENCE] == []


def test_every_component_is_documented(db):
    components = db.execute("SELECT feed._components()").fetchone()[0]
    assert [c for c in components if f"| `{c}` |" not in REFERENCE] == []
