"""Tokens at rest: encrypted, key rotation, loud failure when no key fits."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection

from portals.models import Portal, PortalCredential

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def _raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cur.fetchone()[0]


def _portal_with_tokens() -> tuple[Portal, PortalCredential]:
    portal = Portal.objects.create(
        member_id="m-enc", domain="enc.bitrix24.test", client_endpoint="https://enc.bitrix24.test/rest/",
        application_token="app-token-secret", status=Portal.Status.ACTIVE,
    )
    cred = PortalCredential.objects.create(portal=portal, access_token="access-secret", refresh_token="refresh-secret")
    return portal, cred


@pytest.mark.django_db
def test_tokens_are_stored_encrypted_and_read_back_in_clear(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD_KEY]
    portal, cred = _portal_with_tokens()

    for table, column, pk, secret in (
        ("portals_portal", "application_token", portal.pk, "app-token-secret"),
        ("portals_portalcredential", "access_token", cred.pk, "access-secret"),
        ("portals_portalcredential", "refresh_token", cred.pk, "refresh-secret"),
    ):
        raw = _raw(table, column, pk)
        assert secret not in raw
        assert Fernet(OLD_KEY.encode()).decrypt(raw.encode()).decode() == secret

    cred = PortalCredential.objects.get(pk=cred.pk)
    assert (cred.access_token, cred.refresh_token) == ("access-secret", "refresh-secret")
    assert Portal.objects.get(pk=portal.pk).application_token == "app-token-secret"


@pytest.mark.django_db
def test_a_token_no_configured_key_decrypts_raises_instead_of_returning_garbage(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD_KEY]
    _, cred = _portal_with_tokens()
    settings.TOKEN_ENCRYPTION_KEYS = [NEW_KEY]  # the old key was dropped too early

    with pytest.raises(InvalidToken):
        PortalCredential.objects.get(pk=cred.pk)


@pytest.mark.django_db
def test_rotate_token_keys_reencrypts_everything_so_the_old_key_can_be_dropped(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [OLD_KEY]
    portal, cred = _portal_with_tokens()
    empty = Portal.objects.create(member_id="m-empty", domain="e.test", client_endpoint="https://e.test/rest/")

    settings.TOKEN_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    call_command("rotate_token_keys", stdout=io.StringIO())

    settings.TOKEN_ENCRYPTION_KEYS = [NEW_KEY]
    cred = PortalCredential.objects.get(pk=cred.pk)
    assert (cred.access_token, cred.refresh_token) == ("access-secret", "refresh-secret")
    assert Portal.objects.get(pk=portal.pk).application_token == "app-token-secret"
    assert Portal.objects.get(pk=empty.pk).application_token == ""
    with pytest.raises(InvalidToken):
        Fernet(OLD_KEY.encode()).decrypt(_raw("portals_portalcredential", "refresh_token", cred.pk).encode())


@pytest.mark.django_db
def test_rotate_token_keys_fails_loudly_when_a_value_cannot_be_decrypted(settings):
    from django.core.management.base import CommandError

    settings.TOKEN_ENCRYPTION_KEYS = [OLD_KEY]
    _portal_with_tokens()
    settings.TOKEN_ENCRYPTION_KEYS = [NEW_KEY]

    with pytest.raises(CommandError, match="no configured key decrypts"):
        call_command("rotate_token_keys")


@pytest.mark.django_db
def test_rotate_token_keys_also_reencrypts_pbx_signing_keys_and_recording_passwords(settings):
    from calls.connections.services import create_connection
    from calls.models import ConnectionSecret, PbxConnection

    settings.TOKEN_ENCRYPTION_KEYS = [OLD_KEY]
    portal, _ = _portal_with_tokens()
    issued = create_connection(portal=portal, name="Main PBX", originate_url="https://pbx.example.com/originate")
    PbxConnection.objects.filter(pk=issued.connection.pk).update(recording_secret="rec-password")
    secret_before = ConnectionSecret.objects.get(connection=issued.connection).key

    settings.TOKEN_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    call_command("rotate_token_keys", stdout=io.StringIO())

    settings.TOKEN_ENCRYPTION_KEYS = [NEW_KEY]  # the old key is gone: everything must still open
    assert ConnectionSecret.objects.get(connection=issued.connection).key == secret_before
    assert PbxConnection.objects.get(pk=issued.connection.pk).recording_secret == "rec-password"
