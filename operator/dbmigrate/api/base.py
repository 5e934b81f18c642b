"""The base of every API model, so the generated CRD schema follows Kubernetes conventions.

Fields are snake_case in Python and camelCase on the wire (``by_alias``). Every field must carry a
``description``: the CRD generator refuses a field without one, so ``kubectl explain`` documents
the whole API. Free-form dicts are avoided: a structural schema prunes what it does not declare.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of spec, status and every step result that ends up in the resource's status."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
        defer_build=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase form written to the API server (None fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
