"""Shared pieces of the service's OpenAPI document (``GET /openapi.json``).

The routes read their bodies raw (``json_body.py`` is the one strict parser), so FastAPI cannot
see a body model in their signatures. A route names its body with :func:`json_body` instead, and
its answers with :func:`answers`; both take pydantic models, the single source of payload shapes.
:func:`install` then has FastAPI build the document as usual and adds what only these helpers
know: the request-body models' schemas under ``components.schemas``. Each family's security
scheme comes from the ``fastapi.security`` object its auth dependency declares (``auth.py``).

The document describes the service as clients meet it without ``--test-controls``: the test
routes (``/_test/...``, ``/healthz``) stay out of it, and so do injected faults (``faults.py``),
which exist to break this contract on purpose (a dropped connection or a 200 that is not JSON
cannot be described by any schema).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

__all__ = ["Detail", "answers", "error_answers", "install", "json_body", "parameter"]

COMPONENTS = "#/components/schemas/"
#: What FastAPI documents for every route with parameters; our routes validate parameters
#: themselves and answer each family's own 4xx, so these never go out (``_drop_default_422``).
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

_BODY_MODELS: dict[str, type[BaseModel]] = {}


class Detail(BaseModel):
    """``{"detail": str}``: the error body of Modzy and CHIME, and every family's 401 but TensorBay's."""

    detail: str = Field(description="What was wrong, naming the field, id or header at fault.")


def json_body(
    model: type[BaseModel] | Any,
    description: str,
    *,
    required: bool = True,
    media_type: str = "application/json",
) -> dict[str, Any]:
    """``openapi_extra`` declaring a route's request body as ``model``.

    :param model: A pydantic model, or a type pydantic can describe (e.g. ``list[Work]``) wrapped
        in a ``RootModel``; its schema goes to ``components.schemas`` under its class name.
    :param description: What the body is, and what the service refuses beyond the schema.
    :param required: Whether a request without a body is refused.
    :param media_type: The body's content type.
    """
    _BODY_MODELS[model.__name__] = model
    schema = {"$ref": COMPONENTS + model.__name__}
    return {
        "requestBody": {"required": required, "description": description, "content": {media_type: {"schema": schema}}}
    }


def parameter(name: str, where: str, annotation: Any, description: str, *, required: bool = False) -> dict[str, Any]:
    """An OpenAPI parameter object for one the route reads itself (query string or header).

    :param name: The parameter's name on the wire.
    :param where: ``query``, ``header`` or ``path``.
    :param annotation: Its type, constraints included (``Annotated[int, Field(ge=1)]``): pydantic
        writes the schema.
    :param description: What it does, and its default.
    :param required: Whether a request without it is refused.
    """
    schema = TypeAdapter(annotation).json_schema()
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def answers(
    model: type[BaseModel] | None,
    statuses: Mapping[int, str],
    *,
    media_type: str = "application/json",
    headers: Mapping[str, dict[str, Any]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries: each of ``statuses`` answered with a body of ``model`` (none if ``None``).

    :param model: The body's pydantic model.
    :param statuses: Status code → when it is answered.
    :param media_type: The body's content type (Evo's errors are ``application/problem+json``).
    :param headers: Response headers of these answers (name → header object).
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status, description in statuses.items():
        entry: dict[str, Any] = {"description": description}
        if model is not None and media_type == "application/json":
            entry["model"] = model
        elif model is not None:
            # FastAPI files a ``model`` under application/json only: name the real media type.
            entry["content"] = {media_type: {"schema": {"$ref": COMPONENTS + model.__name__}}}
            _BODY_MODELS[model.__name__] = model
        if headers:
            entry["headers"] = dict(headers)
        out[status] = entry
    return out


#: The header of a 429 (``rate_limit.py``).
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending again.",
        "schema": TypeAdapter(Annotated[int, Field(ge=1)]).json_schema(),
    }
}


def error_answers(
    model: type[BaseModel],
    statuses: Mapping[int, str],
    *,
    body: bool = False,
    rate_limited: bool = False,
    media_type: str = "application/json",
) -> dict[int | str, dict[str, Any]]:
    """A route's error answers in its family's ``model``: ``statuses`` plus the ones every route has.

    :param model: The family's error body.
    :param statuses: Status code → when, for the route's own errors.
    :param body: The route takes a body, so an oversized one gets 413 (``app.BodySizeLimit``).
    :param rate_limited: The service limits requests per key (``rate_limit.py``): 429 with ``Retry-After``.
    :param media_type: The error body's content type.
    """
    errors = dict(statuses)
    if body:
        errors.setdefault(413, "Request body larger than the service takes (`--max-body-bytes`).")
    errors.setdefault(500, "The service failed.")
    out = answers(model, errors, media_type=media_type)
    if rate_limited:
        why = {429: "Too many requests for this key."}
        out.update(answers(model, why, media_type=media_type, headers=RETRY_AFTER))
    return dict(sorted(out.items(), key=lambda item: str(item[0])))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS):
            yield ref[len(COMPONENTS) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _add_body_schemas(doc: dict[str, Any]) -> None:
    """Put the schema of every model ``doc`` refers to (and only those) under ``components.schemas``."""
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    wanted = [_BODY_MODELS[name] for name in sorted(set(_refs(doc["paths"]))) if name in _BODY_MODELS]
    if not wanted:
        return
    _, defs = models_json_schema([(model, "validation") for model in wanted], ref_template=COMPONENTS + "{model}")
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)


def _drop_default_422(doc: dict[str, Any]) -> None:
    """Remove FastAPI's automatic 422 (its ``HTTPValidationError``), which no route answers."""
    for operations in doc["paths"].values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None and "HTTPValidationError" in set(_refs(answer)):
                del operation["responses"]["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    if not any(name in _FASTAPI_VALIDATION for name in _refs(doc["paths"])):
        for name in _FASTAPI_VALIDATION:
            schemas.pop(name, None)


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (``/openapi.json``) FastAPI's document plus the request bodies.

    :param app: The service's app, with every route included.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _add_body_schemas(doc)
            _drop_default_422(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
