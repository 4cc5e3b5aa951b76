"""The wire contract the code cites lives in the repository, and every citation finds its section."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO / "docs" / "jobs-api.md"
# Where the code and its docs cite the contract.
CITING = [REPO / "airflow_jobwait", REPO / "reference-service", REPO / "tests", REPO / "docs", REPO / "README.md"]
# "docs/jobs-api.md`` §1", "docs/jobs-api.md`` section 4", "section 2 of ``docs/jobs-api.md``".
SECTION = re.compile(r"docs/jobs-api\.md`*\)?\s*(?:§\s*|section\s+)(\d+)|section\s+(\d+)\s+of\s+`*docs/jobs-api\.md")


def _citing_files() -> list[Path]:
    files: list[Path] = []
    for root in CITING:
        files.extend([root] if root.is_file() else sorted(root.rglob("*.py")) + sorted(root.rglob("*.md")))
    return [path for path in files if path not in (CONTRACT, Path(__file__).resolve())]


def test_every_citation_names_the_contract_in_the_repository() -> None:
    assert CONTRACT.is_file()
    bare = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _citing_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"(?<![\w/])jobs-api\.md", line)
    ]
    assert bare == [], f"citations without the docs/ path: {bare}"


def test_every_cited_section_exists() -> None:
    headings = set(re.findall(r"^## (\d+)\. ", CONTRACT.read_text(), flags=re.MULTILINE))
    assert headings == {"0", "1", "2", "3", "4", "5", "6"}
    cited = {
        (f"{path.relative_to(REPO)}", section)
        for path in _citing_files()
        for match in SECTION.findall(path.read_text())
        for section in match
        if section
    }
    assert cited, "no section citations found: the pattern no longer matches how the code cites"
    assert {(where, section) for where, section in cited if section not in headings} == set()
