"""The shape every API family of the reference service has."""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter


class ApiFamily(Protocol):
    """One API family (inference jobs, dataset jobs, compute tasks, results store).

    A family module exposes ``create(config: ServiceConfig, db: Database) -> ApiFamily``;
    ``create`` runs the family's DDL. ``start``/``stop`` run in the app's lifespan and own any
    background work (e.g. moving jobs along); ``stop`` must leave SQLite consistent so a
    restart resumes every unfinished job.
    """

    router: APIRouter

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
