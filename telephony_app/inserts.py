"""``INSERT … ON CONFLICT DO NOTHING RETURNING``: rows that may already exist, inserted in one statement.

The hot paths used to insert each such row in its own savepoint and catch the ``IntegrityError`` of a
duplicate: three round trips per row (SAVEPOINT, INSERT, RELEASE). Here a duplicate is simply not
inserted, and the statement returns what it did insert, so the caller still tells new rows from
duplicates. A concurrent transaction inserting the same key makes the statement wait for it, as the
unique index did before, then skip the row once it committed.

PostgreSQL and SQLite ≥ 3.35 (the two databases this runs on) both return rows from such an insert; ``QuerySet.bulk_create(ignore_conflicts=True)`` does not hand
them back, so this goes one level down, to the manager's ``_insert``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Model
from django.db.models.constants import OnConflict


def insert_new(objs: Sequence[Model], returning: Sequence[str], *, using: str = "default") -> list[tuple[Any, ...]]:
    """Insert ``objs`` (instances of one model, not saved yet), skipping those that conflict with a unique
    constraint; returns the ``returning`` columns of the rows inserted, in insertion order."""
    if not objs:
        return []
    model = type(objs[0])
    opts = model._meta
    fields = [f for f in opts.concrete_fields if not f.generated and f is not opts.auto_field]
    for obj in objs:
        for f in fields:
            f.pre_save(obj, add=True)  # defaults such as auto_now, as save() would
    returned = model._base_manager.using(using)._insert(
        list(objs), fields=fields, returning_fields=[opts.get_field(name) for name in returning],
        using=using, on_conflict=OnConflict.IGNORE,
    )
    # One object: Django fetches one row, None when the row was skipped.
    return [tuple(row) for row in returned or [] if row is not None]
