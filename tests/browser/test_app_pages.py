"""Every page of the app in the portal's frame, in Russian and in English: it renders, speaks the viewer's
language only, shows no scroll bar at 1280 px, keeps the frame as tall as itself, and logs no error."""

from __future__ import annotations

import pytest

from browser.browser_catalogues import pairs, untranslated_texts
from browser.browser_fixtures import AppStack

PAGES = ["status", "connections", "employees", "lines", "handling", "activity", "help"]

TEXTS = """() => {
    const texts = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) { const t = walker.currentNode.textContent.trim(); if (t) texts.push(t); }
    for (const el of document.querySelectorAll('[placeholder], [aria-label], [title]')) {
        for (const name of ['placeholder', 'aria-label', 'title']) {
            const v = el.getAttribute(name); if (v && v.trim()) texts.push(v.trim());
        }
    }
    return texts;
}"""


def _visit_every_page(app_stack: AppStack, lang: str, pages: list[str]) -> None:
    b24 = app_stack.create_portal(lang=lang)
    app_stack.install(b24)
    view = app_stack.open_app(b24, lang=lang)
    try:
        _check_pages(view, lang, pages)
    except AssertionError:
        view.watched.allow_console(".")  # reported here already, with the page's own words
        raise


def _check_pages(view, lang: str, pages: list[str]) -> None:
    frame = view.frame
    assert frame.evaluate("() => document.documentElement.lang") == lang
    tabs = pairs(lang, "djangojs")
    for name in pages:
        frame.click(f"#app-tabs .tab-{name}")
        frame.wait_for_selector(f"#page-{name}[data-loaded=true]")
        assert frame.query_selector(f"#page-{name} .error-alert") is None, (name, frame.inner_text(f"#page-{name}"))
        texts = frame.evaluate(TEXTS)
        assert not untranslated_texts(texts, lang), (name, untranslated_texts(texts, lang))
        view.assert_fits()
    # the tab labels are the catalogue's, not the English source strings
    labels = frame.eval_on_selector_all("#app-tabs [role=tab]", "els => els.map(e => e.textContent.trim())")
    assert labels[:2] == [tabs["Status"], tabs["PBX connections"]]
    assert view.fit()["frameWidth"] < 1280  # the portal's menu takes its part of the 1280 px window
    problems = view.watched.unexpected_problems()
    assert not problems, problems


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_page_speaks_the_viewers_language_and_fits_the_frame_at_1280(app_stack: AppStack, lang):
    _visit_every_page(app_stack, lang, PAGES)
