"""Payloads of the results store (CHIME workflow Results, ``docs/jobs-api.md`` §4) as pydantic models.

For the OpenAPI document (``openapi.py``); ``results_store.py`` parses and checks bodies itself.
What a schema cannot say is left to the service's 400: ids unique within a batch, MongoDB filter
and projection semantics (``mongo_query.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

NonEmpty = Annotated[str, Field(min_length=1)]
MAX_LIMIT = 10_000


class Work(BaseModel):
    """A work to deposit: any fields, these checked."""

    model_config = ConfigDict(extra="allow")

    id: NonEmpty = Field(description="Unique in the store and in the batch.")
    pipeline: NonEmpty
    status: Literal["success", "failure"]
    results: dict[str, Any] | None = Field(None, description="Holds `locked: bool` (the lock rule).")


class WorkUpdate(BaseModel):
    """A work to update, matched by ``id``: its top-level fields replace the stored ones."""

    model_config = ConfigDict(extra="allow")

    id: NonEmpty
    pipeline: NonEmpty = Field(None, json_schema_extra={"default": None})  # type: ignore[assignment]
    status: Literal["success", "failure"] = Field(None)  # type: ignore[assignment]
    results: dict[str, Any] | None = None


class Works(RootModel[list[Work]]):
    """``POST /results``: works to store, all or none."""


class WorkUpdates(RootModel[list[WorkUpdate]]):
    """``PUT /results``: works to change, all or none."""


class View(BaseModel):
    """``POST /view``."""

    query: dict[str, Any] | None = Field(None, description="A MongoDB filter (`mongo_query.py` says which).")
    projection: dict[str, bool | Literal[0, 1]] | None = Field(None, description="Inclusion or exclusion, not both.")
    skip: Annotated[int, Field(ge=0)] | None = None
    limit: Annotated[int, Field(ge=0, le=MAX_LIMIT)] | None = Field(None, description="0 or absent: no limit.")


class Count(BaseModel):
    """``POST /view/count``."""

    query: dict[str, Any] | None = Field(None, description="A MongoDB filter.")


class Version(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str


class Counts(RootModel[dict[str, int]]):
    """``{pipeline: number of works}``."""


class Deposited(RootModel[dict[str, Literal[True]]]):
    """``{pipeline: true}`` for each pipeline of the batch."""


class Done(RootModel[Literal[True]]):
    """``true``."""


class Found(RootModel[list[dict[str, Any]]]):
    """The works found, projected."""


class Total(RootModel[Annotated[int, Field(ge=0)]]):
    """How many works match."""
