"""Re-encrypt every stored secret with the first key in TOKEN_ENCRYPTION_KEYS.

Rotation: put the new key first, keep the old ones after it, deploy, run this command, then drop
the old keys. Each value is rewritten with a compare-and-swap on its ciphertext, so a token
refreshed meanwhile by a worker is never overwritten with the older value.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models
from django.db.models import TextField
from django.db.models.functions import Cast

from portals.crypto import Ciphertext, EncryptedTextField, InvalidToken, fernet


def encrypted_fields() -> Iterator[tuple[type[models.Model], str]]:
    """Every EncryptedTextField of every installed model: a secret added to any app later (PBX
    signing keys, recording passwords) is rotated too, without this command having to know it."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                yield model, field.name


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first of TOKEN_ENCRYPTION_KEYS (after adding a new key)."

    def handle(self, *args, **options) -> None:
        keys = fernet()
        rotated = changed_meanwhile = 0
        for model, field in encrypted_fields():
            raw_qs = model.objects.annotate(raw=Cast(field, TextField())).exclude(raw="").exclude(raw=None)
            for pk, raw in raw_qs.values_list("pk", "raw").iterator():
                try:
                    new_raw = keys.rotate(raw.encode()).decode()
                except InvalidToken as exc:
                    raise CommandError(
                        f"{model.__name__} {pk} {field}: no configured key decrypts it; "
                        "keep the old key in TOKEN_ENCRYPTION_KEYS until rotation is done"
                    ) from exc
                # Raw UPDATE of the ciphertext: the field would encrypt a plaintext again.
                updated = (
                    model.objects.annotate(raw=Cast(field, TextField()))
                    .filter(pk=pk, raw=raw)
                    .update(**{field: Ciphertext(new_raw)})
                )
                if updated:
                    rotated += 1
                else:
                    changed_meanwhile += 1  # rewritten meanwhile, hence already under the first key
        self.stdout.write(f"re-encrypted {rotated} value(s); {changed_meanwhile} changed meanwhile (already current)")

