"""The pages' strings (djangojs domain): the catalogues hold exactly the messages of frontend/src.

Completeness (every message translated into Russian and English, placeholders matching) is checked for every
catalogue, this one included, by tests/i18n/test_catalogues.py; this file checks that the djangojs catalogues
are in step with the sources, and that the built bundle carries their Russian text.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
LANGUAGES = ("ru", "en")


def _entries(po: Path) -> str:
    """The catalogue without the creation date makemessages stamps on every run."""
    return "\n".join(line for line in po.read_text(encoding="utf-8").splitlines()
                     if not line.startswith('"POT-Creation-Date:'))


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (FRONTEND / "node_modules").is_dir():
        pytest.fail("node and frontend/node_modules are needed (scripts/build-frontend installs them)")
    return node


@pytest.mark.timeout(600)
def test_the_djangojs_catalogues_hold_exactly_the_messages_of_the_pages(tmp_path):
    build = tmp_path / "build"
    for lang in LANGUAGES:
        target = build / "locale" / lang / "LC_MESSAGES"
        target.mkdir(parents=True)
        shutil.copy2(ROOT / "locale" / lang / "LC_MESSAGES" / "djangojs.po", target / "djangojs.po")
    subprocess.run([_node(), "scripts/extract-messages.mjs", "--out", str(build)], cwd=FRONTEND, check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable,
                                             "APP_VAR_DIR": str(tmp_path / "var")})
    for lang in LANGUAGES:
        ours = ROOT / "locale" / lang / "LC_MESSAGES" / "djangojs.po"
        fresh = build / "locale" / lang / "LC_MESSAGES" / "djangojs.po"
        assert _entries(fresh) == _entries(ours), (
            f"locale/{lang}/LC_MESSAGES/djangojs.po is out of date with frontend/src: run "
            "`node frontend/scripts/extract-messages.mjs` and translate the new entries")


def test_a_string_only_a_vue_attribute_holds_is_in_the_catalogue():
    """xgettext alone cannot see gettext() inside a template attribute; the compiled pages can."""
    source = (FRONTEND / "src" / "components" / "SecretReveal.vue").read_text(encoding="utf-8")
    assert ':title="gettext(\'Copy the secret now: it is shown only once.\')"' in source
    catalogue = (ROOT / "locale" / "ru" / "LC_MESSAGES" / "djangojs.po").read_text(encoding="utf-8")
    assert 'msgid "Copy the secret now: it is shown only once."\nmsgstr "Скопируйте секрет сейчас' in catalogue


def test_the_built_pages_carry_the_russian_catalogue(frontend_bundle):
    assert "Скопируйте секрет сейчас: он показывается только один раз." in frontend_bundle


@pytest.fixture
def frontend_bundle() -> str:
    subprocess.run(["bash", "scripts/build-frontend"], cwd=ROOT, check=True, capture_output=True)
    return (ROOT / "inportal" / "static" / "inportal" / "app.js").read_text(encoding="utf-8")
