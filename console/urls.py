from django.contrib.auth import views as auth_views
from django.urls import URLPattern, path

from console import views
from console.access import on_admin_host

app_name = "console"

_pages = [
    path("", views.portals, name="portals"),
    path("login/", auth_views.LoginView.as_view(template_name="console/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="console:login"), name="logout"),
    path("portals/<int:portal_id>/", views.portal, name="portal"),
    path("portals/<int:portal_id>/as-admin/", views.portal_as_admin, name="portal-as-admin"),
    path("portals/<int:portal_id>/rest-log.json", views.rest_log_export, name="rest-log-export"),
    path("search/", views.find, name="search"),
    path("calls/<uuid:call_uuid>/", views.call, name="call"),
    path("issues/", views.issue_list, name="issues"),
    path("dead-letters/", views.letters, name="dead-letters"),
    path("dead-letters/<int:pk>/replay", views.letter_replay, name="dead-letter-replay"),
    path("dead-letters/<int:pk>/dismiss", views.letter_dismiss, name="dead-letter-dismiss"),
    path("dead-letters/bulk-replay", views.letters_bulk_replay, name="dead-letters-bulk-replay"),
    path("rest-log/", views.rest_log, name="rest-log"),
    path("audit/", views.audit_log, name="audit"),
]

# Every console page, the sign-in included, only on ADMIN_HOST when one is set.
urlpatterns: list[URLPattern] = [
    path(str(p.pattern), on_admin_host(p.callback), name=p.name) for p in _pages
]
