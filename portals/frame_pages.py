"""Which page the installer shows once an install is recorded: a registry another app fills.

``portals`` owns the install (verification, storage, event bindings) but not the product's pages;
the app that owns them registers a renderer in its ``AppConfig.ready()``. Without one the installer
shows its own plain confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from django.http import HttpRequest, HttpResponse

from .install import InstallOutcome

InstalledPageRenderer = Callable[[HttpRequest, InstallOutcome, Mapping[str, str]], HttpResponse]

_renderer: InstalledPageRenderer | None = None


def register_installed_page(renderer: InstalledPageRenderer) -> None:
    global _renderer
    _renderer = renderer


def installed_page(request: HttpRequest, outcome: InstallOutcome, fields: Mapping[str, str]) -> HttpResponse | None:
    """The registered page for a recorded install, or None when no app registered one."""
    return _renderer(request, outcome, fields) if _renderer is not None else None
