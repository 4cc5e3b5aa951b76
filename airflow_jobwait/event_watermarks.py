"""Watermarks of the event triggers: what a watcher has already reported, and where it is kept.

Sans-I/O, like ``client/``: the triggers (``triggers/events.py``) scan a source and hand the
scan to ``Watermark.advance``; this module decides which items are new and what to remember.
The guarantees it gives are in ``docs/event-triggers.md``.

How one watcher's watermark works. A source lists items (works, jobs) with a time on the
service's side (a work's ``creation``, a job's ``submittedAt``/``createdAt``) and an identity (the
dedupe key). Every poll scans a *window*: every item whose time is at least ``since``, where
``since`` is the previous scan's ``until`` (the service's clock when it answered) less
``lookback`` seconds. The window overlaps the previous one by ``lookback``: an item that becomes
visible (deposited, or terminal) up to ``lookback`` seconds after its time is still in a window
when it does, and items with equal times on either side of a scan are scanned again. Scanning
the same item twice is harmless: the watermark keeps the keys it has reported (``seen``) for as
long as they can appear in a window again, and reports a key once. Once an item's time falls
below ``floor`` (the window's start) it is forgotten: the dedupe set is bounded by the items of
one window, and by ``max_seen`` on top.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Version of the stored watermark's shape; a stored value of another version is not read.
WATERMARK_VERSION = 1
#: Default bound of the dedupe set (keys of one window). Past it the oldest are dropped (logged).
DEFAULT_MAX_SEEN = 20_000
#: Prefix of the asset state store key of a watcher's watermark (one key per trigger).
STATE_KEY_PREFIX = "airflow_jobwait.watermark."


@dataclass(frozen=True)
class SourceItem:
    """One item of a scan, as a source lists it.

    :param key: Dedupe identity: reported at most once (a work id; a job id; a dataset job id and
        its ``finishedAt``, because a retried TensorBay job ends again).
    :param id: What the event names (work or job id).
    :param time: Seconds since the epoch on the item's clock; orders it into windows.
    :param ready: Reportable: a work (always), a job in a terminal status.
    :param payload: JSON-safe fields the event carries for this item.
    """

    key: str
    id: str
    time: float
    ready: bool
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Scan:
    """The items of one window ``[since, until]`` (both on the service's clock).

    :param commits: Filled by the watchers that consumed this scan: what each writes once
        Airflow has stored the events it derived (``triggers/events.py``).
    """

    since: float
    until: float
    items: list[SourceItem]
    commits: list[Any] = field(default_factory=list)


class Watermark(BaseModel):
    """What one watcher has reported, as kept in the asset state store (JSON).

    :param horizon: ``until`` of the last scan taken in (``None``: no scan yet, a fresh watcher).
    :param floor: Items older than this are not reported (already were, or before the watcher).
    :param seen: Reported keys with their item's time, for the items at or above ``floor``.
    """

    model_config = ConfigDict(extra="ignore")

    version: int = WATERMARK_VERSION
    horizon: float | None = None
    floor: float | None = None
    seen: dict[str, float] = Field(default_factory=dict)

    @property
    def fresh(self) -> bool:
        """Never took in a scan: the first one sets the baseline."""
        return self.horizon is None

    def needs_catch_up(self, lookback: float, scan: Scan, start: float | None = None) -> float | None:
        """Where a catch-up scan must start so that nothing since this watermark is skipped.

        A watcher resumed from its stored watermark (after a restart or a move) joins a shared
        poll whose window may start after its own: it then reads the gap itself, once. So does a
        fresh watcher told to ``start`` before the shared window.

        :param lookback: The window's overlap (seconds).
        :param scan: The first shared scan the watcher gets.
        :param start: A fresh watcher's ``start``.
        :return: ``since`` of the catch-up scan, or ``None`` if ``scan`` already covers it.
        """
        if self.horizon is None:
            since = start
        else:
            since = self.horizon - lookback if self.floor is None else max(self.horizon - lookback, self.floor)
        return since if since is not None and since < scan.since else None

    def advance(
        self,
        scan: Scan,
        lookback: float,
        start: float | None = None,
        max_seen: int = DEFAULT_MAX_SEEN,
    ) -> tuple[list[SourceItem], Watermark, int]:
        """Take in a scan: the items to report now, and the watermark that remembers them.

        A fresh watcher reports nothing from its first scan but items at or after ``start`` (its
        baseline: everything else it sees is taken as reported before it). Later, an item is
        reported once: ready, not reported before, at or above ``floor``.

        :param scan: The window's items (merged with a catch-up scan, if one was needed).
        :param lookback: The window's overlap (seconds).
        :param start: A fresh watcher reports items from this time on (``None``: only items that
            become visible after its first scan).
        :param max_seen: Bound of the dedupe set.
        :return: New items (in scan order, each key once), the next watermark, and how many keys
            were dropped to keep the bound (their window's late items are no longer reported).
        """
        if self.fresh:
            floor = start if start is not None else float("inf")
            # Later scans: nothing before ``start`` either (without one, whatever was not ready in
            # the baseline scan is reported once it is).
            base = start if start is not None else float("-inf")
        else:
            floor = base = self.floor if self.floor is not None else float("-inf")
        seen = dict(self.seen)
        new: list[SourceItem] = []
        for item in scan.items:
            if not item.ready or item.key in seen:
                continue
            seen[item.key] = item.time
            if item.time >= floor:
                new.append(item)
        horizon = max(scan.until, self.horizon or scan.until)
        # Keys below the next window's start can never be scanned again (but by a catch-up from
        # this horizon, which starts at the same place): forget them.
        next_floor = max(horizon - lookback, base)
        seen = {key: when for key, when in seen.items() if when >= next_floor}
        dropped = 0
        if len(seen) > max_seen:
            # Keep the newest; raise the floor past the dropped ones so none is reported again
            # (a late item at or below the cut is then not reported: the documented price).
            ordered = sorted(seen.items(), key=lambda kv: kv[1])
            cut = ordered[len(seen) - max_seen - 1][1]
            kept = {key: when for key, when in ordered if when > cut}
            dropped = len(seen) - len(kept)
            seen = kept
            next_floor = max(next_floor, _just_after(cut))
        return new, Watermark(horizon=horizon, floor=next_floor, seen=seen), dropped

    def to_store(self) -> dict[str, Any]:
        """The JSON kept in the asset state store."""
        return self.model_dump(mode="json")

    @classmethod
    def from_store(cls, value: object) -> Watermark | None:
        """A stored watermark, or ``None`` if ``value`` is none (or of another version)."""
        if not isinstance(value, dict) or value.get("version") != WATERMARK_VERSION:
            return None
        return cls.model_validate(value)


def _just_after(when: float) -> float:
    """The next float after ``when``: strictly above it, so a key at ``when`` is below the floor."""
    return math.nextafter(when, math.inf)


def merge_items(*scans: Sequence[SourceItem]) -> list[SourceItem]:
    """Items of several scans, each key once (the later scan's view of an item wins)."""
    by_key: dict[str, SourceItem] = {}
    for items in scans:
        for item in items:
            by_key[item.key] = item
    return list(by_key.values())


def earliest(*marks: Watermark | None) -> Watermark | None:
    """The watermark to resume from when the copies of several assets disagree: the one with the
    oldest horizon, so that nothing any copy has not committed is skipped (duplicates, not misses)."""
    found = [mark for mark in marks if mark is not None]
    if not found:
        return None
    if any(mark.fresh for mark in found):
        return None
    return min(found, key=lambda mark: mark.horizon if mark.horizon is not None else float("-inf"))


def state_key(classpath: str, kwargs: Mapping[str, Any]) -> str:
    """The asset state store key of one watcher: its class and kwargs, hashed.

    Two watchers of one asset (two triggers in its ``AssetWatcher`` list) keep separate
    watermarks; a watcher whose kwargs change is a new trigger for Airflow and starts afresh.
    """
    canonical = json.dumps({"classpath": classpath, "kwargs": kwargs}, sort_keys=True, separators=(",", ":"))
    return STATE_KEY_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:24]
