"""Every document the repository cites is in the repository.

A "§N.M" anywhere names a section of docs/bitrix24-contract.md (and a file that cites one says so) (§11.N is item N of its section 11,
§12 "Name" a group of its section 12); a ``docs/…`` path names a file or folder of the repository; nothing
points at documents kept outside it.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "bitrix24-contract.md"

_TEXT_SUFFIXES = frozenset({
    ".py", ".md", ".txt", ".html", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".json", ".sh", ".js", ".css",
    ".in", "",
})
_NOT_OURS = frozenset({".git", ".venv", "var", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache"})

_HEADING = re.compile(r"^(#{2,3})\s+(\d+(?:\.\d+)?)[.\s]")
_LIST_ITEM = re.compile(r"^(\d+)\.\s")
_GROUP = re.compile(r"^\*\*([^*]+)\*\*\s*$")
# "§5.3", "§ 5.3", "§1.7-1.11" / "§1.3-§1.6" (both ends are checked), "§12 \"Events\"".
_CITE = re.compile(r"§\s?(\d+(?:\.\d+)?)(?:\s?[-\u2013]\s?§?(\d+(?:\.\d+)?))?(?:\s\"([^\"]+)\")?")
# A path of another repository in the contract's source notation ("`jssdk: docs/…`") is not ours.
_FOREIGN_SOURCE = re.compile(r"`(?:ru-docs|docs|phpsdk|pysdk|jssdk): [^`]*`")
_DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]*[\w/]")
# The research notes the product was built from live outside the repository: citing them sends a reader nowhere.
_OUTSIDE = re.compile(
    r"\.\./shared|(?<![\w-])shared/docs|/work/shared"
    r"|\b(?:engineering-notes|field-notes|settings-field-notes|frame-protocol|marketplace-requirements)\b"
)


@cache
def tracked_files() -> tuple[Path, ...]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, timeout=60
        ).stdout.decode()
        paths = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):  # an export without .git: every file but the ignored folders
        paths = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in _NOT_OURS]
            paths.extend(Path(folder) / f for f in files)
    return tuple(p for p in paths if p.suffix in _TEXT_SUFFIXES and p.is_file())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


@cache
def contract_sections() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """The section numbers of the contract, and the bold group names inside each top-level section."""
    sections: set[str] = set()
    groups: dict[str, set[str]] = {}
    top = ""
    for line in CONTRACT.read_text(encoding="utf-8").splitlines():
        heading = _HEADING.match(line)
        if heading:
            number = heading.group(2)
            sections.add(number)
            if heading.group(1) == "##":
                top = number
            continue
        item = _LIST_ITEM.match(line)
        if item and top == "11":
            sections.add(f"11.{item.group(1)}")
        group = _GROUP.match(line.strip())
        if group and top:
            groups.setdefault(top, set()).add(group.group(1).strip())
    return frozenset(sections), {k: frozenset(v) for k, v in groups.items()}


def unresolved_citations(text: str) -> list[tuple[int, str]]:
    """(offset, citation) for every "§" the contract lacks."""
    sections, groups = contract_sections()
    found = []
    for match in _CITE.finditer(text):
        first, last, group = match.groups()
        found += [(match.start(), f"§{n}") for n in filter(None, (first, last)) if n not in sections]
        # A quoted name after a whole section with groups (§12) names a group; elsewhere it is a quotation.
        if group and first in groups and group not in groups[first]:
            found.append((match.start(), f'§{first} "{group}"'))
    return found


def missing_docs_paths(text: str) -> list[tuple[int, str]]:
    text = _FOREIGN_SOURCE.sub(lambda m: " " * len(m.group(0)), text)
    found = []
    for match in _DOCS_PATH.finditer(text):
        cited = match.group(0).rstrip(".")
        if not (ROOT / cited).exists():
            found.append((match.start(), cited))
    return found


def outside_references(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(0)) for m in _OUTSIDE.finditer(text)]


def _problems(check) -> list[str]:
    """What ``check`` finds in every tracked file but this one (its examples are wrong on purpose)."""
    problems = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue
        text = _read(path)
        for offset, what in check(text):
            line = text.count("\n", 0, offset) + 1
            problems.append(f"{path.relative_to(ROOT).as_posix()}:{line}: {what}")
    return problems


def test_the_contract_has_the_sections_the_code_is_built_on():
    sections, groups = contract_sections()
    for number in ("1.3", "1.6", "2.3", "3.1", "4.2", "5.3", "5.4", "5.5", "6.1", "6.2", "11.8", "12"):
        assert number in sections
    assert "CRM lookup" in groups["12"]


def test_every_section_cited_exists_in_the_bitrix24_contract():
    problems = _problems(unresolved_citations)
    assert not problems, "cited but not in docs/bitrix24-contract.md:\n" + "\n".join(problems)


def test_a_file_that_cites_sections_names_the_document():
    unnamed = [
        path.relative_to(ROOT).as_posix() for path in tracked_files()
        if path not in (CONTRACT, Path(__file__).resolve())
        and _CITE.search(text := _read(path)) and "docs/bitrix24-contract.md" not in text
    ]
    assert not unnamed, "cites \"§\" without naming docs/bitrix24-contract.md:\n" + "\n".join(unnamed)


def test_every_docs_path_cited_exists():
    problems = _problems(missing_docs_paths)
    assert not problems, "cited but not in the repository:\n" + "\n".join(problems)


def test_nothing_points_at_documents_outside_the_repository():
    problems = _problems(outside_references)
    assert not problems, "points outside the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "unresolved"),
    [
        ("see §5.3 and §99.1", ["§99.1"]),
        ("§1.7-1.42 and §1.3-§1.6", ["§1.42"]),
        ('§12 "Events" and §12 "Nowhere"; §5.4 "a quotation"', ['§12 "Nowhere"']),
        ("§11.8 but not §11.40", ["§11.40"]),
    ],
)
def test_the_citation_check_finds_sections_the_contract_lacks(text, unresolved):
    assert [what for _, what in unresolved_citations(text)] == unresolved


def test_the_path_checks_tell_our_docs_from_other_places():
    text = "docs/pbx-api.md, /api/pbx/v1/docs/, `jssdk: docs/content/x.md`, docs/nothing-here.md, ../shared/x"
    assert [what for _, what in missing_docs_paths(text)] == ["docs/nothing-here.md"]
    assert [what for _, what in outside_references(text)] == ["../shared"]
    assert [what for _, what in outside_references("see engineering-notes §2")] == ["engineering-notes"]
