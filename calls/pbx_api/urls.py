from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from calls.pbx_api import route_views
from calls.pbx_api import views as pbx_views

# The PBX API, version 1 (docs/pbx-api.md). Also what the published schema covers.
pbx_api_v1 = [
    path("connections/<str:connection_id>/events", pbx_views.EventsView.as_view(), name="pbx-events"),
    path(
        "connections/<str:connection_id>/calls/<path:call_id>/recording",
        pbx_views.RecordingView.as_view(),
        name="pbx-recording",
    ),
    path("connections/<str:connection_id>/lines", pbx_views.LinesView.as_view(), name="pbx-lines"),
    path("connections/<str:connection_id>/route", route_views.RouteView.as_view(), name="pbx-route"),
]

urlpatterns = [
    path("api/pbx/v1/", include(pbx_api_v1)),
    path(
        "api/pbx/v1/schema/",
        SpectacularAPIView.as_view(patterns=[path("api/pbx/v1/", include(pbx_api_v1))]),
        name="pbx-api-schema",
    ),
    path("api/pbx/v1/docs/", SpectacularRedocView.as_view(url_name="pbx-api-schema"), name="pbx-api-docs"),
    path("api/pbx/v1/swagger/", SpectacularSwaggerView.as_view(url_name="pbx-api-schema"), name="pbx-api-swagger"),
    re_path(r"^api/pbx/(?P<path>.*)$", pbx_views.not_found, name="pbx-api-not-found"),  # last
]
