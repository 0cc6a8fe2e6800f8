"""Re-encrypt every stored secret with the first key in TOKEN_ENCRYPTION_KEYS.

Rotation: put the new key first, keep the old ones after it, deploy, run this command, then drop
the old keys. Each value is rewritten with a compare-and-swap on its ciphertext, so a token
refreshed meanwhile by a worker is never overwritten with the older value.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db.models import TextField
from django.db.models.functions import Cast

from portals.crypto import Ciphertext, InvalidToken, fernet
from portals.models import Portal, PortalCredential

# (model, encrypted fields)
ENCRYPTED = ((Portal, ("application_token",)), (PortalCredential, ("access_token", "refresh_token")))


class Command(BaseCommand):
    help = "Re-encrypt stored tokens with the first of TOKEN_ENCRYPTION_KEYS (after adding a new key)."

    def handle(self, *args, **options) -> None:
        keys = fernet()
        rotated = changed_meanwhile = 0
        for model, fields in ENCRYPTED:
            for field in fields:
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

