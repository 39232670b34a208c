"""Docs stand alone: every Markdown file a doc, comment or the Makefile cites is in this repository, and no
relative path leads out of it (to notes that only exist on the machine the code was written on)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT_SUFFIXES = {".md", ".py", ".sh", ".yml", ".yaml", ".toml", ".cfg", ".go", ".j2", ".txt", ".service"}
TEXT_NAMES = {"Makefile", "Dockerfile"}
# A Markdown file name, with or without a path, as cited in prose, code comments or links.
MD_CITATION = re.compile(r"(?<![\w./-])((?:\.{1,2}/)*[\w.-]+(?:/[\w.-]+)*\.md)\b")
UP_PATH = re.compile(r"(?<![\w./-])((?:\.\./)+\w[\w.-]*(?:/[\w.-]+)*)")  # a name after the ../ parts
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
# Written by `antsibull-changelog generate` at a release, not kept in the repository.
GENERATED = {"CHANGELOG.md"}
# Released history keeps what earlier versions said; it is not read as documentation.
SKIPPED = {"changelogs/changelog.yaml"}


def repo_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [REPO / name for name in sorted(set(listed.split("\0"))) if name and (REPO / name).is_file()]


def text_files() -> list[Path]:
    return [
        path
        for path in repo_files()
        if (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES)
        and path.relative_to(REPO).as_posix() not in SKIPPED
        and path != Path(__file__).resolve()
    ]


def cited_md_exists(citing: Path, cited: str) -> bool:
    """A citation resolves next to the citing file, from the repository root, or in docs/."""
    return any(
        (base / cited).resolve().is_file() and (base / cited).resolve().is_relative_to(REPO)
        for base in (citing.parent, REPO, REPO / "docs")
    )


def broken_references(path: Path) -> list[str]:
    text = URL.sub("", path.read_text(errors="replace"))
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path.relative_to(REPO)}:{number}"
        found += [
            f"{where}: cites {cited}, which is not in this repository"
            for cited in MD_CITATION.findall(line)
            if Path(cited).name not in GENERATED and not cited_md_exists(path, cited)
        ]
        found += [
            f"{where}: {up} leads out of this repository"
            for up in UP_PATH.findall(line)
            if not (path.parent / up).resolve().is_relative_to(REPO)
        ]
        if "/shared/reference" in line:
            found.append(f"{where}: cites research notes that are not in this repository")
    return found


def test_every_cited_markdown_file_is_in_the_repository() -> None:
    files = text_files()
    assert any(path.name == "Makefile" for path in files)
    assert any(path.parent.name == "docs" for path in files)
    broken = [problem for path in files for problem in broken_references(path)]
    assert broken == [], "\n".join(broken)


def test_the_check_finds_what_it_is_for(tmp_path: Path) -> None:
    citing = REPO / "docs" / "example.md"
    assert not cited_md_exists(citing, "tencent-kms-api-notes.md")
    assert not cited_md_exists(citing, "../../shared/reference/tencent-kms-api.md")
    assert cited_md_exists(citing, "lab.md")
    assert cited_md_exists(REPO / "tests" / "lab" / "__init__.py", "docs/lab.md")
    assert not (citing.parent / "../../shared").resolve().is_relative_to(REPO)
