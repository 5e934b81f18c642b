"""Builds a fully populated instance of any API model, so tests can prove that every declared
field survives a trip (through JSON, or through the real API server's /status subresource)."""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dbmigrate.api.base import ApiModel

WHEN = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
STRING_BY_NAME = {"reason": "ExampleReason", "type": "Ready", "status": "True"}


def example_value(annotation: Any, name: str, info: FieldInfo | None = None) -> Any:
    """A valid example for one annotation (first enum member, smallest allowed number, ...)."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return example_value(options[0], name, info)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin is list:
        return [example_value(get_args(annotation)[0], name)]
    if origin is dict:
        return {"example": example_value(get_args(annotation)[1], name)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return example_instance(annotation)
    return _scalar(annotation, name, info)


def _scalar(annotation: Any, name: str, info: FieldInfo | None) -> Any:
    if annotation is bool:
        return True
    if annotation is int:
        return max(_bound(info, "ge", 0), 1) if _bound(info, "le", 10**9) >= 1 else 0
    if annotation is float:
        return 1.5
    if annotation is datetime:
        return WHEN
    if annotation is str:
        return STRING_BY_NAME.get(name, f"example-{name}".replace("_", "-"))
    raise TypeError(f"no example for {annotation!r} ({name})")


def _bound(info: FieldInfo | None, key: str, default: int) -> int:
    for meta in info.metadata if info else []:
        value = getattr(meta, key, None)
        if value is not None:
            return int(value)
    return default


def example_instance(model: type[BaseModel]) -> Any:
    """An instance of ``model`` with every field, optional ones included, set to an example."""
    values = {
        name: example_value(field.annotation, name, field)
        for name, field in model.model_fields.items()
    }
    return model.model_validate(values) if issubclass(model, ApiModel) else model(**values)
