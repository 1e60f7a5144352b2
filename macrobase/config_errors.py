"""pydantic ValidationErrors as one line per problem: ``path.to.key: expected X, got Y; did you mean Z?``.

``format_validation_errors(errors, Root)`` follows each error's location through the models
under ``Root`` to name the key path the user wrote (list indices as ``[0]``, union tags
skipped) and what was expected there: a ``Literal``'s choices, a union's ``type`` tags, the
field's ``description``, or the type in words. Misspelt keys and enum values get the "did
you mean" of :mod:`macrobase.errors`. Validators report cross-field problems with
``problem`` (one, at a key relative to the model) or ``problems`` (several); error types
of one's own are turned into lines by ``special``.

>>> from typing import Literal
>>> from pydantic import BaseModel, ConfigDict, Field, ValidationError
>>> class Point(BaseModel):
...     model_config = ConfigDict(extra="forbid", strict=True)
...     x: int = Field(description="an integer coordinate")
...     colour: Literal["red", "blue"] = "red"
>>> try:
...     Point.model_validate({"x": "1", "color": "red"})
... except ValidationError as exc:
...     print("\\n".join(format_validation_errors(exc.errors(), Point)))
x: expected an integer coordinate, got '1'
color: unknown key; did you mean colour?
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Callable, Literal, Mapping, Union

from pydantic import BaseModel, Tag
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from macrobase.errors import closest, show, suggest

__all__ = ["format_validation_errors", "problem", "problems"]

#: Lines for an error type of one's own: ``special[type](path, input) -> lines``.
Special = Mapping[str, Callable[[str, Any], list[str]]]


def problem(message: str, field: str | None = None) -> PydanticCustomError:
    """A cross-field error; ``field`` (relative key path) is appended to the error's location."""
    return PydanticCustomError("macrobase_config", "{message}", {"message": message, "field": field})


def problems(found: list[tuple[str, str]]) -> PydanticCustomError:
    """Several cross-field errors at once: ``(relative key path, message)`` pairs."""
    return PydanticCustomError("macrobase_config_many", "{problems}", {"problems": found})


def _unwrap(tp: Any) -> tuple[Any, FieldInfo | None]:
    """Strip Annotated/Optional; return the bare type and any FieldInfo found in Annotated."""
    info = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            args = typing.get_args(tp)
            for meta in args[1:]:
                if isinstance(meta, FieldInfo) and meta.description:
                    info = meta
            tp = args[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return tp, info
        else:
            return tp, info


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], key: Any) -> tuple[str, FieldInfo] | None:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return name, info
    return None


def _union_member(tp: Any, tag: Any) -> Any:
    for member in typing.get_args(tp):
        if typing.get_origin(member) is Annotated:
            args = typing.get_args(member)
            if any(isinstance(m, Tag) and m.tag == tag for m in args[1:]):
                return member
            member = args[0]
        if _is_model(member) and "type" in member.model_fields:
            if tag in typing.get_args(member.model_fields["type"].annotation):
                return member
    return None


class _Where(typing.NamedTuple):
    path: str  # "pipelines[0].explainer.min_support"
    parent: Any  # model class holding the last key, if any
    tp: Any  # bare expected type at the location
    info: FieldInfo | None  # field (or Annotated item) description, if any


def _join(path: str, part: Any) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


def _walk(loc: tuple, root: type[BaseModel]) -> _Where:
    """Follow a pydantic error location through the models, skipping union tags."""
    tp: Any = root
    info: FieldInfo | None = None
    parent = None
    path = ""
    for part in loc:
        tp, _ = _unwrap(tp)
        if _is_model(tp):
            found = _field(tp, part)
            parent = tp
            path = f"{path}.{part}" if path else str(part)  # a key, even if YAML made it a number
            if found is None:
                return _Where(path, parent, None, None)
            _, info = found
            tp = info.annotation
            continue
        origin = typing.get_origin(tp)
        if origin in (list, dict) and isinstance(part, (int, str)):
            args = typing.get_args(tp)
            tp = args[-1] if args else Any
            _, info = _unwrap(tp)
            path = _join(path, part) if origin is list else f"{path}.{part}"
            parent = None
            continue
        if origin is Union:
            member = _union_member(tp, part)
            if member is not None:  # a discriminator tag, not a key the user wrote
                tp = member
                continue
        path = _join(path, part)
        tp, info, parent = None, None, None
    tp, inner = _unwrap(tp)
    if inner is not None:
        info = inner
    return _Where(path, parent, tp, info)


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}


def _expectation(where: _Where, err: dict) -> str:
    tp = where.tp
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is Union:
        tags = []
        for member in typing.get_args(tp):
            bare, _ = _unwrap(member)
            if _is_model(bare) and "type" in bare.model_fields:
                tags += [str(a) for a in typing.get_args(bare.model_fields["type"].annotation)]
        if tags:
            return "a mapping with type: " + " | ".join(tags)
    if where.info is not None and where.info.description:
        return where.info.description
    if _is_model(tp):
        return "a mapping"
    return _TYPE_WORDS.get(err["type"], "a valid value")


def format_validation_errors(errors: list[dict], root: type[BaseModel], special: Special | None = None) -> list[str]:
    """One line per problem in ``errors`` (``ValidationError.errors()`` of validating ``root``)."""
    lines: list[str] = []
    # A misspelled required key shows up twice in pydantic (unknown "pipeline" + missing
    # "pipelines"); the "did you mean" line says it all, so the "missing" line is dropped.
    suggested: set[str] = set()
    missing_paths = {_walk(err["loc"], root).path for err in errors if err["type"] == "missing"}
    for err in errors:
        lines.extend(_format_one(err, _walk(tuple(err["loc"]), root), suggested, missing_paths, special or {}))
    redundant = {f"{path}: required key missing" for path in suggested}
    return [line for line in dict.fromkeys(lines) if not any(line.startswith(r) for r in redundant)]


def _format_one(err: dict, where: _Where, suggested: set[str], missing_paths: set[str], special: Special) -> list[str]:
    kind = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    path = where.path or "(top level)"

    if kind == "macrobase_config":
        if ctx.get("field"):
            path = f"{where.path}.{ctx['field']}" if where.path else ctx["field"]
        return [f"{path}: {ctx['message']}"]
    if kind == "macrobase_config_many":
        out = []
        for field, message in ctx["problems"]:
            out.append(f"{where.path}.{field}: {message}" if where.path else f"{field}: {message}")
        return out
    if kind in special:
        return special[kind](path, value)
    if kind == "extra_forbidden":
        options = _keys(where.parent) if where.parent is not None else []
        guess = closest(loc[-1], options)
        if guess is not None:
            parent_path = where.path.rsplit(".", 1)[0] if "." in where.path else ""
            target = f"{parent_path}.{guess}" if parent_path else guess
            if target in missing_paths:
                suggested.add(target)
            return [f"{path}: unknown key; did you mean {guess}?"]
        return [f"{path}: unknown key; expected one of {', '.join(options)}"]
    if kind == "invalid_key":
        return [f"{path}: unknown key; keys are names (strings), got {show(value)}"]
    if kind == "missing":
        return [f"{path}: required key missing; expected {_expectation(where, err)}"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        if not tags and typing.get_origin(where.tp) is Union:
            tags = _expectation(where, err).replace("a mapping with type: ", "").split(" | ")
        if kind == "union_tag_not_found":
            return [f"{path}.type: required key missing; expected one of {', '.join(tags)}"]
        tag = ctx.get("tag")
        return [f"{path}.type: expected one of {', '.join(tags)}, got {show(tag)}{suggest(tag, tags)}"]
    expected = _expectation(where, err)
    got = f", got {show(value)}"
    if kind == "literal_error":
        options = [str(a) for a in typing.get_args(where.tp)] if typing.get_origin(where.tp) is Literal else []
        return [f"{path}: expected {expected}{got}{suggest(value, options)}"]
    # type errors, range errors and our before-validators' ValueErrors (durations)
    return [f"{path}: expected {expected}{got}"]
