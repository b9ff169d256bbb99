"""What higher domains add to trace answers (a golden mark, a regression verdict, broken
policies) and the list filters they offer, registered from above: traces never import them.

A field is a SQL expression per dialect that the read query renders inside the trace's JSON
object, as a correlated subquery of the `traces` row (`traces.user_id`, `traces.id`), so a read
stays one query whatever is registered. Until its domain registers it, a field answers its
default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql.elements import ColumnElement


@dataclass(frozen=True)
class AnswerField:
    key: str
    # Dialect name -> SQL expression of the field's JSON value (JSON text on SQLite).
    sql: Mapping[str, str]
    # Shown in list items too, not only in the answer of one trace.
    in_lists: bool = True


ListFilter = Callable[[str, Any], ColumnElement[bool]]
"""(user id, the filter's value) -> a condition on `Trace` rows."""

DEFAULTS: dict[str, AnswerField] = {
    "golden": AnswerField("golden", {"sqlite": "json('false')", "postgresql": "false"}, in_lists=True),
    "regression": AnswerField("regression", {"sqlite": "NULL", "postgresql": "NULL"}, in_lists=True),
    "breaches": AnswerField("breaches", {"sqlite": "json('[]')", "postgresql": "'[]'::json"}, in_lists=False),
}

_fields: dict[str, AnswerField] = dict(DEFAULTS)
_filters: dict[str, ListFilter] = {}
# Bumped by every registration, so that read statements built before are built again.
revision = 0


def register_field(field: AnswerField) -> None:
    """Makes `field` part of trace answers (replacing the default or an earlier registration)."""
    global revision
    if field.key not in DEFAULTS:
        raise ValueError(f"trace answers declare no field {field.key!r}")
    _fields[field.key] = field
    revision += 1


def register_filter(name: str, condition: ListFilter) -> None:
    """Lets `GET /api/v1/traces?<name>=...` filter with `condition`."""
    _filters[name] = condition


def fields(*, in_list: bool) -> list[AnswerField]:
    return [field for field in _fields.values() if field.in_lists or not in_list]


def list_filter(name: str) -> ListFilter | None:
    return _filters.get(name)
