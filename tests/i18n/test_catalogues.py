"""The gettext catalogues: every message translated into Russian and English, none stale.

Russian and English are both complete on purpose: English is not left to the msgid fallback, so a
message missing from either catalogue shows up here rather than on a page.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("ru", "en")
CATALOGUES = sorted((ROOT / "locale").glob("*/LC_MESSAGES/*.po"))


def test_both_languages_have_a_server_catalogue():
    for lang in LANGUAGES:
        assert (ROOT / "locale" / lang / "LC_MESSAGES" / "django.po").is_file()


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda p: str(p.relative_to(ROOT / "locale")))
def test_every_message_is_translated_and_its_placeholders_match(catalogue):
    # msgfmt --check verifies python-format placeholders of each translation against its msgid.
    result = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(catalogue)],
                            capture_output=True, text=True, env={"LC_ALL": "C"})
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    stats = result.stderr.strip().splitlines()[-1]
    assert "untranslated" not in stats and "fuzzy" not in stats, f"{catalogue.name}: {stats}"
    assert re.match(r"\d+ translated messages?\.$", stats), stats


def _entries(po: Path) -> str:
    """The catalogue without the creation date makemessages stamps on every run."""
    return "\n".join(line for line in po.read_text(encoding="utf-8").splitlines()
                     if not line.startswith('"POT-Creation-Date:'))


@pytest.mark.timeout(600)
def test_the_catalogues_hold_exactly_the_messages_of_the_sources(tmp_path):
    """scripts/messages on a copy of the tree must not change the server catalogues."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.splitlines()
    copy = tmp_path / "tree"
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    subprocess.run(["bash", "scripts/messages"], cwd=copy, check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "APP_VAR_DIR": str(tmp_path / "var")})
    for lang in LANGUAGES:
        ours = ROOT / "locale" / lang / "LC_MESSAGES" / "django.po"
        fresh = copy / "locale" / lang / "LC_MESSAGES" / "django.po"
        assert _entries(fresh) == _entries(ours), (
            f"locale/{lang}/LC_MESSAGES/django.po is out of date with the sources: run scripts/messages "
            "and translate the new entries")
