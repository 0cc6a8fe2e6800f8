from django.apps import AppConfig


class InportalConfig(AppConfig):
    """The in-portal app: the page Bitrix24 frames, its session and the JSON API the page uses."""

    name = "inportal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portals import frame_pages

        from .launch.pages import render_installed_page

        # The installer view (portals) shows our shell in wizard mode once the install is recorded.
        frame_pages.register_installed_page(render_installed_page)
