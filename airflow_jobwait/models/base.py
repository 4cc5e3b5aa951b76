"""Base class for every payload on the wire."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


def _accept_camel_and_snake(name: str) -> AliasChoices:
    return AliasChoices(to_camel(name), name)


class WireModel(BaseModel):
    """A JSON payload: camelCase on the wire, snake_case in Python.

    Parsing accepts both spellings (the services' clients do); dumping with
    ``by_alias=True`` produces the wire spelling. Unknown fields are kept, because
    services add fields and a provider must not drop what it does not know.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_accept_camel_and_snake, serialization_alias=to_camel),
        populate_by_name=True,
        extra="allow",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON body as the service expects it (camelCase, no unset optionals)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe dict for XCom (wire spelling, so downstream code reads what the docs show)."""
        return self.model_dump(mode="json", by_alias=True)


def first_error(err: ValidationError) -> tuple[str, str]:
    """The dotted path of the first invalid field and pydantic's sentence about it."""
    first = err.errors()[0]
    return ".".join(str(part) for part in first["loc"]) or "<root>", first["msg"]
