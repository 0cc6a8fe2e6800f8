"""``INSERT … ON CONFLICT DO NOTHING RETURNING``: rows that may already exist, inserted in one statement.

The hot paths used to insert each such row in its own savepoint and catch the ``IntegrityError`` of a
duplicate: three round trips per row (SAVEPOINT, INSERT, RELEASE). Here a duplicate is simply not
inserted, and the statement returns what it did insert, so the caller still tells new rows from
duplicates. A concurrent transaction inserting the same key makes the statement wait for it, as the
unique index did before, then skip the row once it committed.

PostgreSQL and SQLite ≥ 3.35 (the two databases this runs on) both return rows from such an insert;
``QuerySet.bulk_create(ignore_conflicts=True)`` does not hand them back, so this goes one level down, to
the manager's ``_insert``. The model signals are sent as ``save()`` sends them (``pre_save`` for every
object, ``post_save`` with ``created=True`` for each one inserted), so receivers such as the metrics see
no difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from django.db.models import Model
from django.db.models.constants import OnConflict
from django.db.models.signals import post_save, pre_save

M = TypeVar("M", bound=Model)


def insert_new(objs: Sequence[M], key: Sequence[str], *, using: str = "default") -> list[M]:
    """Insert ``objs`` (instances of one model, not saved yet), skipping each that conflicts with a unique
    constraint; returns the objects inserted, their primary key set. ``key`` names the fields of the
    unique constraint that tells them apart (e.g. ``("connection", "event_id")``)."""
    if not objs:
        return []
    model = type(objs[0])
    opts = model._meta
    fields = [f for f in opts.concrete_fields if not f.generated and f is not opts.auto_field]
    key_fields = [opts.get_field(name) for name in key]
    for obj in objs:
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
        for f in fields:
            f.pre_save(obj, add=True)  # defaults such as auto_now, as save() would
    returned = model._base_manager.using(using)._insert(
        list(objs), fields=fields, returning_fields=[opts.pk, *key_fields], using=using,
        on_conflict=OnConflict.IGNORE,
    )
    waiting: dict[tuple, list[M]] = {}
    for obj in objs:
        waiting.setdefault(tuple(getattr(obj, f.attname) for f in key_fields), []).append(obj)
    inserted = []
    # One object: Django fetches one row, None when the row was skipped.
    for row in returned or []:
        if row is None:
            continue
        pk, *values = row
        obj = waiting[tuple(values)].pop(0)
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = using
        inserted.append(obj)
    for obj in inserted:
        post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=using)
    return inserted
