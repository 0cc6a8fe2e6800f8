"""The in-portal JSON API, version 1, and its own OpenAPI schema (apart from the PBX API's)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from ..activity import views as activity
from ..call_settings.views import CallSettingsView
from ..connections import views as connections
from ..employees import views as employees
from ..help.views import HelpView
from ..lines import views as lines
from ..status import views as status
from ..wizard import views as wizard
from .session_views import SessionView

api_v1 = [
    path("session", SessionView.as_view(), name="inportal-session"),
    path("status", status.StatusView.as_view(), name="inportal-status"),
    path("repairs/<str:repair_id>", status.RepairView.as_view(), name="inportal-repair"),
    path("wizard", wizard.WizardView.as_view(), name="inportal-wizard"),
    path("connections", connections.ConnectionsView.as_view(), name="inportal-connections"),
    path("connections/<str:connection_id>", connections.ConnectionView.as_view(), name="inportal-connection"),
    path("connections/<str:connection_id>/rotate", connections.RotateView.as_view(), name="inportal-connection-rotate"),
    path("connections/<str:connection_id>/test", connections.ConnectionTestView.as_view(),
         name="inportal-connection-test"),
    path("connections/<str:connection_id>/check", connections.CheckView.as_view(), name="inportal-connection-check"),
    path("employees", employees.EmployeesView.as_view(), name="inportal-employees"),
    path("employees/unowned-extensions", employees.UnownedExtensionsView.as_view(),
         name="inportal-employees-unowned"),
    path("employees/sync", employees.EmployeesSyncView.as_view(), name="inportal-employees-sync"),
    path("employees/<int:user_id>", employees.EmployeeView.as_view(), name="inportal-employee"),
    path("lines", lines.LinesView.as_view(), name="inportal-lines"),
    path("lines/undeclared", lines.UndeclaredLinesView.as_view(), name="inportal-lines-undeclared"),
    path("lines/<int:line_id>", lines.LineView.as_view(), name="inportal-line"),
    path("settings", CallSettingsView.as_view(), name="inportal-settings"),
    path("help", HelpView.as_view(), name="inportal-help"),
    path("calls", activity.CallsView.as_view(), name="inportal-calls"),
    path("calls/undelivered", activity.UndeliveredView.as_view(), name="inportal-calls-undelivered"),
    path("calls/undelivered/<int:letter_id>/retry", activity.LetterRetryView.as_view(), name="inportal-letter-retry"),
    path("calls/<str:call_id>", activity.CallView.as_view(), name="inportal-call"),
    path("calls/<str:call_id>/retry", activity.CallRetryView.as_view(), name="inportal-call-retry"),
]

schema_urls = [
    path(
        "bitrix24/app/api/v1/schema/",
        SpectacularAPIView.as_view(
            patterns=[path("bitrix24/app/api/v1/", include(api_v1))],
            custom_settings={
                "TITLE": "In-portal app API",
                "DESCRIPTION": "The JSON API the connector's pages inside Bitrix24 use (version 1).",
                "VERSION": "1.0.0",
            },
        ),
        name="inportal-api-schema",
    ),
]
