"""The msgid -> msgstr pairs of the repo's catalogues, for checking that a page shows no untranslated text."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

LOCALE = Path(__file__).resolve().parents[2] / "locale"
_ENTRY = re.compile(r'^(?:msgctxt "(?P<ctx>.*)"\n)?msgid "(?P<id>.*)"\n(?:msgid_plural ".*"\n)?(?P<strs>(?:msgstr(?:\[\d\])? ".*"\n?)+)',
                    re.M)


def _unquote(text: str) -> str:
    return text.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


@cache
def pairs(lang: str, domain: str) -> dict[str, str]:
    """msgid -> first msgstr (catalogues are written with --no-wrap: one line per string)."""
    text = (LOCALE / lang / "LC_MESSAGES" / f"{domain}.po").read_text(encoding="utf-8")
    found = {}
    for match in _ENTRY.finditer(text):
        msgid = _unquote(match.group("id"))
        first = re.search(r'"(.*)"', match.group("strs")).group(1)
        if msgid:
            found[msgid] = _unquote(first)
    return found


def untranslated_texts(texts: list[str], lang: str) -> list[str]:
    """Texts on a page in ``lang`` that are a message of the catalogues left in the other language."""
    leaks = []
    for domain in ("djangojs", "django"):
        translated = pairs("ru", domain)
        for msgid, russian in translated.items():
            if "%" in msgid or msgid == russian or len(msgid) < 3:
                continue
            wrong = msgid if lang == "ru" else russian
            leaks += [t for t in texts if t == wrong]
    return sorted(set(leaks))
