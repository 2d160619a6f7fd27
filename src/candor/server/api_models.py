"""The JSON API's response models: what /openapi.json promises each route answers.

The workflow's results are dataclasses; their models are made from the dataclasses'
own type hints (`model_of`), so the description cannot drift from what a route sends:
a field the workflow adds appears in the schema, and FastAPI checks every answer against
its model. Values are typed as the API writes them (see api.to_jsonable): times and
dates as ISO 8601 strings, bytes as base64, paths as their text, enums as their values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from candor.server.rules import rule_for
from candor.workflow.paging import Page

IsoDateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
IsoDate = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
Base64 = Annotated[str, WithJsonSchema({"type": "string", "contentEncoding": "base64"})]
# Shared by every generated model: an answer is checked against its model, field by field.
MODEL_CONFIG = ConfigDict(extra="forbid")

_models: dict[type, type[BaseModel]] = {}
_names: set[str] = set()


class ApiModel(BaseModel):
    """A hand-written answer (one the workflow has no dataclass for)."""

    model_config = MODEL_CONFIG


def model_of(cls: type, **extra: Any) -> type[BaseModel]:
    """The response model of a workflow dataclass (made once per class).

    extra: fields the route adds to the dataclass's own, as name=(type, default).
    """
    key = cls
    if key in _models and not extra:
        return _models[key]
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {
        field.name: (field_type(hints[field.name]), ...) for field in dataclasses.fields(cls)
    }
    fields.update(extra)
    name = _unique_name(cls.__name__ + ("Answer" if extra else ""), cls)
    model: type[BaseModel] = create_model(
        name, __config__=MODEL_CONFIG, __doc__=cls.__doc__, **fields
    )
    if not extra:
        _models[key] = model
    return model


def _unique_name(name: str, cls: type) -> str:
    """A component name for /openapi.json; two workflow classes may share a short name."""
    if name in _names:
        name = "".join(part.title() for part in cls.__module__.split(".")[-1:]) + name
    _names.add(name)
    return name


def field_type(hint: Any) -> Any:
    """The type a value of `hint` has once it is JSON (as api.to_jsonable writes it)."""
    if hint is Any or hint is object:
        return Any
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return model_of(hint)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return Literal[tuple(member.value for member in hint)]
        if issubclass(hint, datetime):
            return IsoDateTime
        if issubclass(hint, date):
            return IsoDate
        if issubclass(hint, Path):
            return str
        if issubclass(hint, bytes):
            return Base64
        if hint in (str, int, float, bool, type(None)):
            return hint
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return hint
    if origin is Annotated:
        return field_type(args[0])
    if origin in (Union, types.UnionType):
        mapped = tuple(field_type(arg) for arg in args)
        return Union[mapped]  # noqa: UP007 (a Union made at run time)
    if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
        return dict[str, field_type(args[1]) if args else Any]  # type: ignore[misc]
    if origin in (list, tuple, set, frozenset, Sequence) or (
        isinstance(origin, type) and issubclass(origin, Sequence | set | frozenset)
    ):
        items = [arg for arg in args if arg is not Ellipsis]
        if not items:
            return list[Any]
        mapped_items = tuple(field_type(arg) for arg in dict.fromkeys(items))
        item = mapped_items[0] if len(mapped_items) == 1 else Union[mapped_items]  # noqa: UP007
        return list[item]  # type: ignore[valid-type]
    if hint in (dict, list):
        return hint
    raise TypeError(f"no JSON type for {hint!r}")


def page_model(item: type[BaseModel]) -> type[BaseModel]:
    """The model of one page of a list of `item` (candor.workflow.paging.Page)."""
    name = _unique_name(f"PageOf{item.__name__}", Page)
    model: type[BaseModel] = create_model(
        name,
        __config__=MODEL_CONFIG,
        __doc__="One page of a list: its items and where they lie in the whole.",
        items=(list[item], Field(description="This page's items.")),  # type: ignore[valid-type]
        total=(int, Field(description="How many items match, on every page.")),
        limit=(int, Field(description="The most items a page holds.")),
        offset=(int, Field(description="Where this page starts (0 is the first item).")),
        next_offset=(
            int | None,
            Field(description="The offset of the next page; null on the last."),
        ),
    )
    return model


def page_json(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    """A page as the API writes it: `items` (the page's items as JSON) and its place."""
    return {
        "items": items,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
        "next_offset": page.next_offset,
    }


class Problem(ApiModel):
    """A refusal (RFC 9457 problem details, application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="What kind of problem: urn:candor:problem:<kind>.")
    title: str = Field(description="The kind of problem, in words (the same for each kind).")
    status: int = Field(description="The HTTP status.")
    detail: str = Field(description="This problem, in one line a person can act on.")
    instance: str = Field(description="The path of the request refused.")


class WorkspaceStatus(ApiModel):
    purpose: str
    timezone: str
    needs_first_run: bool
    policy_active: bool


class LoginAnswer(ApiModel):
    token: str = Field(description="The bearer token: send `Authorization: Bearer <token>`.")
    token_type: Literal["bearer"]
    username: str
    expires_at: IsoDateTime


class LogoutAnswer(ApiModel):
    ok: bool
    username: str


class Me(ApiModel):
    username: str
    unit: str
    roles: list[str]
    certificate_valid: bool
    expires_at: IsoDateTime


class ReportAnswer(ApiModel):
    """A report (usage or transparency) as its JSON document (docs/reports.md)."""

    report: dict[str, Any]


class EvaluationAnswer(ApiModel):
    """The latest accuracy report card's figures, or null when none is recorded."""

    card: dict[str, Any] | None
    note: str
    as_of: str


BEARER_SCHEME = "bearer"
# What each refusal an API route may answer means (each is a Problem). Every route may
# meet most of them (a form too large, a busy database), so each route lists them all.
REFUSALS: dict[int, str] = {
    400: "Refused: the one-line `detail` says why.",
    403: "Not allowed to this caller (the route's rule or the policy).",
    404: "No such thing (request, subject, user, change, entry), or no such route.",
    405: "The route does not take this method.",
    409: "Not in a state that allows this (a verdict already given, a request already run).",
    413: "The request body is over its limit.",
    422: "The request is not valid: `errors` names each field; or a photo shows several "
    "faces (`faces`, `face_field`), or an Idempotency-Key was used for another request.",
    429: "Too many failed logins; try again after Retry-After seconds.",
    503: "The workspace is busy; try again after Retry-After seconds.",
}
NOT_LOGGED_IN = (
    "Not logged in, the session has ended, or (a login) the username or password is wrong "
    "(WWW-Authenticate: Bearer)."
)


def describe_api(app: FastAPI) -> dict[str, Any]:
    """/openapi.json: FastAPI's description, with the bearer scheme on every route that
    needs a login and the problems (RFC 9457) each route may answer in place of the
    validation error shape FastAPI declares by default (which Candor never sends)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "The token POST /api/login answers: `Authorization: Bearer <token>`.",
        }
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            rule = rule_for(method.upper(), path)
            # A public route may answer 401 too: a login with the wrong password.
            refusals = {**REFUSALS, 401: NOT_LOGGED_IN}
            if rule is None or not rule.public:
                operation["security"] = [{BEARER_SCHEME: []}]
            responses = operation.setdefault("responses", {})
            for status, meaning in sorted(refusals.items()):
                responses[str(status)] = {"description": meaning, "content": problem}
    app.openapi_schema = schema
    return schema


__all__ = [
    "BEARER_SCHEME",
    "ApiModel",
    "Base64",
    "EvaluationAnswer",
    "IsoDate",
    "IsoDateTime",
    "LoginAnswer",
    "LogoutAnswer",
    "Me",
    "Problem",
    "ReportAnswer",
    "WorkspaceStatus",
    "describe_api",
    "field_type",
    "model_of",
    "page_json",
    "page_model",
]
