"""Production settings refuse to start with unsafe defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "APP_ENV": "production",
    "DEBUG": "0",
    "SECRET_KEY": "x" * 50,
    "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "BITRIX24_CLIENT_ID": "app.123",
    "BITRIX24_CLIENT_SECRET": "s3cr3t",
}


def _load_settings(tmp_path, **overrides: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BITRIX24_", "TOKEN_", "SECRET_KEY", "DEBUG", "RECORDINGS_ALLOW"))}
    env.update(GOOD, APP_VAR_DIR=str(tmp_path))
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", "import telephony_app.settings"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )


def test_production_settings_load_when_everything_is_set(tmp_path):
    result = _load_settings(tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "1"}, "DEBUG must be off"),
        ({"SECRET_KEY": None}, "SECRET_KEY must be set"),
        ({"TOKEN_ENCRYPTION_KEYS": None}, "TOKEN_ENCRYPTION_KEYS must be set"),
        ({"BITRIX24_ALLOW_HTTP": "1"}, "BITRIX24_ALLOW_HTTP must be off"),
        ({"RECORDINGS_ALLOW_PRIVATE_HOSTS": "1"}, "RECORDINGS_ALLOW_PRIVATE_HOSTS and RECORDINGS_ALLOW_HTTP must be off"),
        ({"RECORDINGS_ALLOW_HTTP": "1"}, "RECORDINGS_ALLOW_PRIVATE_HOSTS and RECORDINGS_ALLOW_HTTP must be off"),
    ],
)
def test_production_settings_refuse_unsafe_configuration(tmp_path, overrides, message):
    result = _load_settings(tmp_path, **overrides)
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    assert message in result.stderr
