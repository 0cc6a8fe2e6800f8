"""Encryption at rest for tokens and other per-portal secrets (Fernet with key rotation)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

__all__ = ["EncryptedTextField", "InvalidToken", "decrypt", "encrypt", "fernet", "reset_keys_cache"]


@lru_cache(maxsize=1)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS is empty: tokens cannot be stored")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEYS must be url-safe base64 Fernet keys (Fernet.generate_key())"
        ) from exc


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.TOKEN_ENCRYPTION_KEYS))


def reset_keys_cache() -> None:
    _fernet_for.cache_clear()


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Raises cryptography.fernet.InvalidToken when no configured key opens the value."""
    return fernet().decrypt(ciphertext.encode()).decode()


class EncryptedTextField(models.TextField):
    """Stores ciphertext, exposes plaintext. Empty string stays empty (no secret yet).

    A value that no key decrypts raises InvalidToken on load instead of silently
    becoming garbage: a missing rotation key must be noticed, not papered over.
    """

    description = "Text encrypted at rest with TOKEN_ENCRYPTION_KEYS"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        if isinstance(value, Ciphertext):
            return str(value)  # already encrypted (key rotation writes ciphertext as is)
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)


class Ciphertext(str):
    """A value that is already encrypted; EncryptedTextField stores it unchanged."""
