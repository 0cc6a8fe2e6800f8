"""Help: the setup instruction of the Marketplace card, in the viewer's language."""

from __future__ import annotations

import pytest
from inportal_fixtures import *  # noqa: F403  (fixtures)
from inportal_fixtures import FrameApi, open_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def help_dir(tmp_path, settings):
    settings.INPORTAL_HELP_DIR = tmp_path
    (tmp_path / "setup.en.md").write_text("# Setting up\n\n1. Connect the PBX.\n", encoding="utf-8")
    (tmp_path / "setup.ru.md").write_text("# Настройка\n\n1. Подключите АТС.\n", encoding="utf-8")  # noqa: RUF001
    return tmp_path


def test_help_is_the_instruction_in_the_viewers_language(sandbox, installed_portal, help_dir):
    english = FrameApi(open_page(sandbox, installed_portal.b24, user_id=2).token).get("help").json()
    installed_portal.b24.lang = "ru"
    russian = FrameApi(open_page(sandbox, installed_portal.b24, user_id=2).token).get("help").json()

    assert english == {"lang": "en", "markdown": "# Setting up\n\n1. Connect the PBX.\n"}
    assert russian["lang"] == "ru" and russian["markdown"].startswith("# Настройка")


def test_without_a_translation_the_english_instruction_is_shown(sandbox, installed_portal, help_dir):
    (help_dir / "setup.ru.md").unlink()
    installed_portal.b24.lang = "ru"

    answer = FrameApi(open_page(sandbox, installed_portal.b24, user_id=2).token).get("help").json()

    assert answer["lang"] == "en"


def test_help_serves_the_instruction_of_the_marketplace_card(sandbox, installed_portal, settings):
    from pathlib import Path

    folder = Path(settings.BASE_DIR) / "docs" / "marketplace"
    for lang in ("en", "ru"):
        installed_portal.b24.lang = lang
        answer = FrameApi(open_page(sandbox, installed_portal.b24, user_id=2).token).get("help").json()
        assert answer == {"lang": lang, "markdown": (folder / f"setup.{lang}.md").read_text(encoding="utf-8")}
