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


# ---------------------------------------------------------------------------
# the documentation stands alone: every link stays inside the repository

import re  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# docs/evaluation.md is being rewritten by the evaluation work of issue 14 (the data
# path it names lies outside the repository); remove this once that lands
PENDING: set[str] = set()
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FORBIDDEN = ("../shared", "shared/design", "shared/seeds", "seed 00")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def _doc_params():
    for path in DOCS:
        name = str(path.relative_to(ROOT))
        marks = [pytest.mark.xfail(reason="rewritten elsewhere in issue 14", strict=False)] if name in PENDING else []
        yield pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize("path", list(_doc_params()))
def test_local_links_resolve_inside_the_repository(path):
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert broken == []


@pytest.mark.parametrize("path", list(_doc_params()))
def test_no_document_points_outside_the_repository(path):
    text = path.read_text().lower()
    assert [word for word in FORBIDDEN if word in text] == []


def test_the_docs_being_checked_include_the_contract_and_the_cli_guide():
    names = {p.name for p in DOCS}
    assert {"README.md", "contract.md", "cli.md", "reference.md", "operations.md"} <= names
