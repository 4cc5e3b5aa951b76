"""A tiny versioned dataset store behind the TensorBay dataset-job family.

Each dataset is a miniature repository: commits hold a full snapshot ``{path: content}`` and a
parent id, a branch points at a commit, and a draft is an uncommitted snapshot on top of a branch
head. Squash-and-merge is computed for real against the merge base, so conflicts, ``override`` and
``skip`` behave like the service's. Every function takes an open ``sqlite3.Connection`` so callers
decide the transaction boundaries (a job's merge and its status change commit together).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEMO_DATASET = "demo-dataset"
AUTHOR = "jobwait"

DDL = """
CREATE TABLE IF NOT EXISTS tb_datasets (
    dataset_id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tb_commits (
    dataset_id TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    parent_id TEXT,
    title TEXT NOT NULL,
    committer TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    files TEXT NOT NULL,
    PRIMARY KEY (dataset_id, commit_id)
);
CREATE TABLE IF NOT EXISTS tb_branches (
    dataset_id TEXT NOT NULL,
    name TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    PRIMARY KEY (dataset_id, name)
);
CREATE TABLE IF NOT EXISTS tb_drafts (
    dataset_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    title TEXT NOT NULL,
    branch_name TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_commit_id TEXT NOT NULL,
    description TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    files TEXT NOT NULL,
    PRIMARY KEY (dataset_id, number)
);
CREATE INDEX IF NOT EXISTS tb_drafts_status ON tb_drafts (dataset_id, status, number);
CREATE TABLE IF NOT EXISTS tb_search_results (
    search_result_id TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    paths TEXT NOT NULL
);
"""

DRAFT_STATUSES = ("OPEN", "CLOSED", "COMMITTED")
STRATEGIES = ("abort", "override", "skip")

# Seed history: main and feature/conflicting fork from ROOT; main then changes README.md.
# feature only touches files main leaves alone (clean merge); conflicting rewrites README.md.
_ROOT_FILES = {
    "README.md": "# demo-dataset\n",
    "labels/catalog.json": '{"classes": ["cat", "dog"]}',
    "data/0001.txt": "cat",
    "data/0002.txt": "dog",
}
_SEED = (
    # (label, parent label, branch to point at it or None, title, changes)
    ("root", None, None, "initial import", _ROOT_FILES),
    ("main-1", "root", "main", "describe the dataset", {"README.md": "# demo-dataset\nTwo labelled images.\n"}),
    (
        "feature-1",
        "root",
        "feature",
        "add a bird",
        {"data/0003.txt": "bird", "labels/catalog.json": '{"classes": ["bird", "cat", "dog"]}'},
    ),
    (
        "conflicting-1",
        "root",
        "conflicting",
        "rewrite the readme and add a fish",
        {"README.md": "# demo-dataset\nRewritten on a branch.\n", "data/0004.txt": "fish"},
    ),
)


class RepoError(Exception):
    """A repository operation that cannot proceed (the message is user-facing)."""


@dataclass
class MergeResult:
    """Outcome of squashing ``source`` onto ``target`` (``files`` is the merged snapshot)."""

    files: dict[str, str]
    target_commit_id: str
    conflicts: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def _seed_commit_id(label: str) -> str:
    # Deterministic so every clone and every fresh database share the same seed ids.
    return hashlib.md5(f"jobwait-seed:{label}".encode()).hexdigest()


def new_id() -> str:
    """A 32-hex id, the shape TensorBay uses for commits and jobs."""
    return uuid.uuid4().hex


def seed(conn: sqlite3.Connection) -> None:
    """Create ``demo-dataset`` with branches ``main``, ``feature`` and ``conflicting`` once."""
    if dataset_exists(conn, DEMO_DATASET):
        return
    now = int(time.time())
    conn.execute("INSERT INTO tb_datasets (dataset_id, created_at) VALUES (?, ?)", (DEMO_DATASET, now))
    snapshots: dict[str, dict[str, str]] = {}
    for label, parent, branch, title, changes in _SEED:
        files = {**(snapshots[parent] if parent else {}), **changes}
        snapshots[label] = files
        parent_id = _seed_commit_id(parent) if parent else None
        _insert_commit(conn, DEMO_DATASET, _seed_commit_id(label), parent_id, title, files, now)
        if branch:
            set_branch(conn, DEMO_DATASET, branch, _seed_commit_id(label))


def dataset_exists(conn: sqlite3.Connection, dataset_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tb_datasets WHERE dataset_id = ?", (dataset_id,)).fetchone() is not None


def clone_dataset(conn: sqlite3.Connection, source: str, target: str) -> None:
    """Copy ``source``'s commits and branches (not its drafts or jobs) under the id ``target``."""
    if not dataset_exists(conn, source):
        raise RepoError(f"dataset {source!r} does not exist")
    conn.execute("INSERT INTO tb_datasets (dataset_id, created_at) VALUES (?, ?)", (target, int(time.time())))
    conn.execute(
        "INSERT INTO tb_commits (dataset_id, commit_id, parent_id, title, committer, created_at, files) "
        "SELECT ?, commit_id, parent_id, title, committer, created_at, files FROM tb_commits WHERE dataset_id = ?",
        (target, source),
    )
    conn.execute(
        "INSERT INTO tb_branches (dataset_id, name, commit_id) SELECT ?, name, commit_id FROM tb_branches "
        "WHERE dataset_id = ?",
        (target, source),
    )


def _insert_commit(
    conn: sqlite3.Connection,
    dataset_id: str,
    commit_id: str,
    parent_id: str | None,
    title: str,
    files: Mapping[str, str],
    created_at: int,
) -> None:
    conn.execute(
        "INSERT INTO tb_commits (dataset_id, commit_id, parent_id, title, committer, created_at, files) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (dataset_id, commit_id, parent_id, title, AUTHOR, created_at, json.dumps(dict(files), sort_keys=True)),
    )


def branch_head(conn: sqlite3.Connection, dataset_id: str, name: str) -> str | None:
    row = conn.execute(
        "SELECT commit_id FROM tb_branches WHERE dataset_id = ? AND name = ?", (dataset_id, name)
    ).fetchone()
    return None if row is None else str(row["commit_id"])


def set_branch(conn: sqlite3.Connection, dataset_id: str, name: str, commit_id: str) -> None:
    conn.execute(
        "INSERT INTO tb_branches (dataset_id, name, commit_id) VALUES (?, ?, ?) "
        "ON CONFLICT (dataset_id, name) DO UPDATE SET commit_id = excluded.commit_id",
        (dataset_id, name, commit_id),
    )


def resolve_revision(conn: sqlite3.Connection, dataset_id: str, revision: str) -> str | None:
    """A branch name or commit id → commit id (``None`` when neither exists)."""
    head = branch_head(conn, dataset_id, revision)
    if head is not None:
        return head
    row = conn.execute(
        "SELECT commit_id FROM tb_commits WHERE dataset_id = ? AND commit_id = ?", (dataset_id, revision)
    ).fetchone()
    return None if row is None else str(row["commit_id"])


def _commit_row(conn: sqlite3.Connection, dataset_id: str, commit_id: str) -> sqlite3.Row:
    row = conn.execute(
        "SELECT commit_id, parent_id, files FROM tb_commits WHERE dataset_id = ? AND commit_id = ?",
        (dataset_id, commit_id),
    ).fetchone()
    if row is None:
        raise RepoError(f"commit {commit_id} does not exist in dataset {dataset_id!r}")
    return row


def commit_files(conn: sqlite3.Connection, dataset_id: str, commit_id: str) -> dict[str, str]:
    return dict(json.loads(_commit_row(conn, dataset_id, commit_id)["files"]))


def _ancestry(conn: sqlite3.Connection, dataset_id: str, commit_id: str) -> list[str]:
    """``commit_id`` then its parents, newest first (histories here are linear per commit)."""
    chain: list[str] = []
    current: str | None = commit_id
    while current is not None and current not in chain:
        chain.append(current)
        current = _commit_row(conn, dataset_id, current)["parent_id"]
    return chain


def merge_base(conn: sqlite3.Connection, dataset_id: str, a: str, b: str) -> str | None:
    in_b = set(_ancestry(conn, dataset_id, b))
    return next((commit for commit in _ancestry(conn, dataset_id, a) if commit in in_b), None)


def commit_files_to_branch(
    conn: sqlite3.Connection, dataset_id: str, branch: str, changes: Mapping[str, str | None], title: str
) -> str:
    """Commit ``changes`` (``None`` deletes a path) on top of ``branch`` and move it; returns the commit id."""
    head = branch_head(conn, dataset_id, branch)
    if head is None:
        raise RepoError(f"branch {branch!r} does not exist in dataset {dataset_id!r}")
    files = commit_files(conn, dataset_id, head)
    _apply(files, changes)
    commit_id = new_id()
    _insert_commit(conn, dataset_id, commit_id, head, title, files, int(time.time()))
    set_branch(conn, dataset_id, branch, commit_id)
    return commit_id


def _apply(files: dict[str, str], changes: Mapping[str, str | None]) -> None:
    for path, content in changes.items():
        if content is None:
            files.pop(path, None)
        else:
            files[path] = content


def _changes_since(base: Mapping[str, str], head: Mapping[str, str]) -> dict[str, str | None]:
    paths = set(base) | set(head)
    return {path: head.get(path) for path in sorted(paths) if base.get(path) != head.get(path)}


def squash_merge(conn: sqlite3.Connection, dataset_id: str, source: str, target: str, strategy: str) -> MergeResult:
    """Squash ``source``'s changes since the merge base onto ``target``'s head.

    A conflict is a path both sides changed since the merge base, to different contents.
    ``override`` takes the source side, ``skip`` keeps the target side; ``abort`` leaves the
    conflicts in the result for the caller to fail on.
    """
    source_head = branch_head(conn, dataset_id, source)
    target_head = branch_head(conn, dataset_id, target)
    for name, head in ((source, source_head), (target, target_head)):
        if head is None:
            raise RepoError(f"branch {name!r} does not exist in dataset {dataset_id!r}")
    assert source_head is not None and target_head is not None
    base = merge_base(conn, dataset_id, source_head, target_head)
    base_files = commit_files(conn, dataset_id, base) if base else {}
    source_changes = _changes_since(base_files, commit_files(conn, dataset_id, source_head))
    target_files = commit_files(conn, dataset_id, target_head)
    target_changes = _changes_since(base_files, target_files)
    conflicts = [
        path for path, content in source_changes.items() if path in target_changes and target_changes[path] != content
    ]
    if strategy == "skip":
        source_changes = {path: content for path, content in source_changes.items() if path not in conflicts}
    merged = dict(target_files)
    _apply(merged, source_changes)
    return MergeResult(
        files=merged,
        target_commit_id=target_head,
        conflicts=conflicts,
        changed=sorted(path for path in source_changes if target_files.get(path) != merged.get(path)),
    )


def create_draft(
    conn: sqlite3.Connection,
    dataset_id: str,
    *,
    title: str,
    branch_name: str,
    parent_commit_id: str,
    files: Mapping[str, str],
    description: str = "",
) -> int:
    """Open a draft on ``branch_name`` holding ``files``; returns its number (per dataset, from 1)."""
    row = conn.execute("SELECT COALESCE(MAX(number), 0) AS n FROM tb_drafts WHERE dataset_id = ?", (dataset_id,))
    number = int(row.fetchone()["n"]) + 1
    now = int(time.time())
    conn.execute(
        "INSERT INTO tb_drafts (dataset_id, number, title, branch_name, status, parent_commit_id, description, "
        "author, created_at, updated_at, files) VALUES (?, ?, ?, ?, 'OPEN', ?, ?, ?, ?, ?, ?)",
        (
            dataset_id,
            number,
            title,
            branch_name,
            parent_commit_id,
            description,
            AUTHOR,
            now,
            now,
            json.dumps(dict(files), sort_keys=True),
        ),
    )
    return number


def draft_body(row: sqlite3.Row, with_files: bool = False) -> dict[str, Any]:
    """The wire form of a draft (``files`` only for our test-control views)."""
    body: dict[str, Any] = {
        "number": row["number"],
        "title": row["title"],
        "branchName": row["branch_name"],
        "status": row["status"],
        "parentCommitId": row["parent_commit_id"],
        "author": {"name": row["author"], "date": row["created_at"]},
        "updatedAt": row["updated_at"],
        "description": row["description"],
    }
    if with_files:
        body["files"] = json.loads(row["files"])
    return body


def get_draft(conn: sqlite3.Connection, dataset_id: str, number: int) -> sqlite3.Row | None:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT * FROM tb_drafts WHERE dataset_id = ? AND number = ?", (dataset_id, number)
    ).fetchone()


def list_drafts(
    conn: sqlite3.Connection, dataset_id: str, status: str | None, branch: str | None, offset: int, limit: int
) -> tuple[list[sqlite3.Row], int]:
    """Drafts by number; ``status=None`` means every status."""
    filters = {"dataset_id": dataset_id, "status": status, "branch_name": branch}
    return page_of(conn, "tb_drafts", filters, "number", offset, limit)


def page_of(
    conn: sqlite3.Connection, table: str, filters: dict[str, Any], order_by: str, offset: int, limit: int
) -> tuple[list[sqlite3.Row], int]:
    """One page of ``table``'s rows whose columns equal every non-``None`` filter, and their total.

    ``table``, the filter columns and ``order_by`` are this module's own names, never request
    input; the values are bound as parameters.
    """
    used = {column: value for column, value in filters.items() if value is not None}
    clause = " AND ".join(f"{column} = ?" for column in used) or "1"
    params = list(used.values())
    total = conn.execute(f"SELECT COUNT(*) AS n FROM {table} WHERE {clause}", params).fetchone()["n"]
    rows = conn.execute(
        f"SELECT * FROM {table} WHERE {clause} ORDER BY {order_by} LIMIT ? OFFSET ?", [*params, limit, offset]
    ).fetchall()
    return rows, int(total)


def commit_draft(conn: sqlite3.Connection, dataset_id: str, number: int, title: str) -> str:
    """Commit an OPEN draft onto its branch (which must not have moved since); returns the commit id."""
    draft = get_draft(conn, dataset_id, number)
    if draft is None:
        raise RepoError(f"draft {number} does not exist in dataset {dataset_id!r}")
    if draft["status"] != "OPEN":
        raise RepoError(f"draft {number} is {draft['status']}, not OPEN")
    if branch_head(conn, dataset_id, draft["branch_name"]) != draft["parent_commit_id"]:
        raise RepoError(f"branch {draft['branch_name']!r} moved since draft {number} was opened")
    commit_id = new_id()
    now = int(time.time())
    _insert_commit(conn, dataset_id, commit_id, draft["parent_commit_id"], title, json.loads(draft["files"]), now)
    set_branch(conn, dataset_id, draft["branch_name"], commit_id)
    conn.execute(
        "UPDATE tb_drafts SET status = 'COMMITTED', updated_at = ? WHERE dataset_id = ? AND number = ?",
        (now, dataset_id, number),
    )
    return commit_id


# --- basic search -------------------------------------------------------------------------------

# Filter keys of the public client (``_KEY_TO_TITLES``) plus our ``path`` and ``content``, mapped
# onto this store's files: a file's content is its label (``category``), its name the keyword.
_SEARCH_KEYS = (
    "path",
    "content",
    "size",
    "category",
    "keyword",
    "segment",
    "withLabel",
    "frame",
    "sensor",
    "attribute",
)
_SEARCH_OPS = ("=", "!=", "in", "contains", ">", "<", ">=", "<=")


@dataclass
class SearchQuery:
    """A normalised basicSearch: ``filters`` are ``(key, operator, value)``."""

    conjunction: str
    filters: list[tuple[str, str, Any]]


def parse_search(arguments: Mapping[str, Any]) -> SearchQuery:
    """Read basicSearch ``arguments``; raises ``ValueError`` naming the bad field.

    Accepts the public client's shape ``{"commit", "conjunction": "and" | "or", "filters": [{"key",
    "operator", "value", ...}], "unit"}`` and, equally, ``{"conditions": {"conjunction", "filters"}}``;
    a filter may also be a list ``[key, operator, value]``. Everything is optional.
    """
    source, where = arguments, "arguments"
    if "conditions" in arguments:
        source, where = arguments["conditions"], "arguments.conditions"
        if not isinstance(source, dict):
            raise ValueError(f"{where} must be an object")
    conjunction = source.get("conjunction") or "and"
    if not isinstance(conjunction, str) or conjunction.lower() not in ("and", "or"):
        raise ValueError(f"{where}.conjunction must be 'and' or 'or'")
    unit = arguments.get("unit") or "file"
    if not isinstance(unit, str) or unit.lower() not in ("file", "frame"):
        raise ValueError("arguments.unit must be 'file' or 'frame'")
    raw_filters = source.get("filters") or []
    if not isinstance(raw_filters, list):
        raise ValueError(f"{where}.filters must be a list")
    return SearchQuery(
        conjunction.lower(), [_parse_filter(item, f"{where}.filters[{i}]") for i, item in enumerate(raw_filters)]
    )


def _parse_filter(item: Any, name: str) -> tuple[str, str, Any]:
    if isinstance(item, dict):
        key, op, value = item.get("key"), item.get("operator"), item.get("value")
    elif isinstance(item, list) and len(item) >= 3:
        key, op, value = item[0], item[1], item[2]
    else:
        raise ValueError(f"{name} must be {{key, operator, value}} or [key, operator, value]")
    if key not in _SEARCH_KEYS:
        raise ValueError(f"{name}: key must be one of {', '.join(_SEARCH_KEYS)}")
    if op not in _SEARCH_OPS:
        raise ValueError(f"{name}: operator must be one of {', '.join(_SEARCH_OPS)}")
    if op == "in" and not isinstance(value, list):
        raise ValueError(f"{name}: operator 'in' needs a list value")
    return str(key), str(op), value


def _subject(path: str, content: str, key: str) -> Any:
    directory, _, name = path.rpartition("/")
    return {
        "path": path,
        "content": content,
        "category": content,
        "size": len(content),
        "keyword": name,
        "segment": directory,
        "withLabel": bool(content),
    }.get(key)  # frame, sensor, attribute: nothing in this store carries them


def _matches(subject: Any, op: str, value: Any) -> bool:
    if op == "=":
        return bool(subject == value)
    if op == "!=":
        return bool(subject != value)
    if op == "in":
        return subject in value
    if op == "contains":
        return subject is not None and str(value) in str(subject)
    try:
        if op == ">":
            return bool(subject > value)
        if op == "<":
            return bool(subject < value)
        if op == ">=":
            return bool(subject >= value)
        return bool(subject <= value)
    except TypeError:
        return False


def basic_search(conn: sqlite3.Connection, dataset_id: str, commit_id: str, query: SearchQuery) -> str:
    """Run ``query`` over ``commit_id``'s files, store the matching paths; returns the search result id."""
    combine = all if query.conjunction == "and" else any
    paths = [
        path
        for path, content in sorted(commit_files(conn, dataset_id, commit_id).items())
        if not query.filters or combine(_matches(_subject(path, content, k), op, v) for k, op, v in query.filters)
    ]
    result_id = new_id()
    conn.execute(
        "INSERT INTO tb_search_results (search_result_id, dataset_id, commit_id, paths) VALUES (?, ?, ?, ?)",
        (result_id, dataset_id, commit_id, json.dumps(paths)),
    )
    return result_id


def search_result(conn: sqlite3.Connection, dataset_id: str, result_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT commit_id, paths FROM tb_search_results WHERE search_result_id = ? AND dataset_id = ?",
        (result_id, dataset_id),
    ).fetchone()
    if row is None:
        return None
    return {"searchResultId": result_id, "commitId": row["commit_id"], "paths": json.loads(row["paths"])}
