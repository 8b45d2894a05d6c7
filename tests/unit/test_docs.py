"""The documents say what the code does: every error name they give is one of the named
errors (``s3split.errors``, or a Fail state of the state machine), docs/errors.md lists every
named error, and every file, link and heading they point to exists."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ERRORS_DOC = ROOT / "docs" / "errors.md"
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "bench" / "README.md",
               *(ROOT / "docs").glob("*.md")])

# Where a document gives an error's name: "fails `Name`", "refused with `Name`", a message
# quoted with its name ("`Name: ...`", "s3split: error: Name: ..."), the rows of the table in
# docs/errors.md. AWS's own names are dotted (``States.Timeout``) or follow other words.
_NAMED = [
    re.compile(r"\b(?:fails?|failing|failed|refused|stops?|raises?)(?: with)? `([A-Z]\w+)`"),
    re.compile(r"`([A-Z][A-Za-z]+): "),
    re.compile(r"error: ([A-Z][A-Za-z]+): "),
]
_TABLE_ROW = re.compile(r"^\| `([A-Z]\w+)` \|", re.MULTILINE)
_PATH = re.compile(r"`((?:src|tests|bench|functions|statemachine|scripts|docs|requirements)"
                   r"/[\w./-]+)`")
_LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
_ANCHORED = re.compile(r"\]\(([^)#:]*\.md)#([^)]+)\)")
# What the benchmarks write when they run (bench/data/ is not kept; shapes.md is kept once run).
GENERATED = ("bench/data", "bench/results/shapes.md")


def error_classes() -> set[str]:
    """The exception classes ``src/s3split/errors.py`` defines (read, not imported)."""
    tree = ast.parse((ROOT / "src" / "s3split" / "errors.py").read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def fail_states(node: Any) -> set[str]:
    """The ``Error`` of every Fail state in an ASL definition, nested ones included."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("Type") == "Fail" and isinstance(node.get("Error"), str):
            found.add(node["Error"])
        for value in node.values():
            found |= fail_states(value)
    elif isinstance(node, list):
        for value in node:
            found |= fail_states(value)
    return found


KNOWN = error_classes() | fail_states(
    json.loads((ROOT / "statemachine" / "pipeline.asl.json").read_text()))


def named_errors(text: str) -> set[str]:
    return {name for pattern in _NAMED for name in pattern.findall(text)}


def test_the_patterns_find_error_names_and_nothing_else() -> None:
    text = ("fails `SourceNotFound: source not found: x`; refused with `RunInProgress`; "
            "`s3split: error: CorruptSource: …`; a `ValidationException`; the "
            "`States.Timeout`; `UploadPartCopy` of the source; it fails `Bogus`")
    assert named_errors(text) == {"SourceNotFound", "RunInProgress", "CorruptSource", "Bogus"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_error_a_document_names_exists(doc: Path) -> None:
    unknown = named_errors(doc.read_text()) - KNOWN
    assert not unknown, f"{doc.relative_to(ROOT)} names errors that do not exist: {unknown}"


def test_the_errors_doc_lists_every_named_error_and_only_those() -> None:
    listed = set(_TABLE_ROW.findall(ERRORS_DOC.read_text()))
    assert listed - KNOWN == set(), "docs/errors.md lists errors that do not exist"
    assert KNOWN - listed == set(), "docs/errors.md does not list these errors"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_and_link_a_document_gives_exists(doc: Path) -> None:
    text = doc.read_text()
    paths = {ROOT / p for p in _PATH.findall(text)}
    links = {(doc.parent / link).resolve() for link in _LINK.findall(text)
             if not link.startswith(("http", "mailto"))}
    missing = sorted(name for name in (str(p.relative_to(ROOT)) for p in paths | links)
                     if not (ROOT / name).exists() and not name.startswith(GENERATED))
    assert not missing, f"{doc.relative_to(ROOT)} points to files that do not exist: {missing}"


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_a_heading_anchor_is_what_github_makes_of_it(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# Cost and time of a split on AWS (model)\n## `s3split run` on X\n")
    assert anchors(doc) == {"cost-and-time-of-a-split-on-aws-model", "s3split-run-on-x"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_heading_a_document_links_to_exists(doc: Path) -> None:
    text = doc.read_text()
    missing = [f"{target}#{anchor}" for target, anchor in _ANCHORED.findall(text)
               if anchor not in anchors((doc.parent / target).resolve())]
    assert not missing, f"{doc.relative_to(ROOT)} links to headings that do not exist: {missing}"
