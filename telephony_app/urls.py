from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("console/", include("console.urls")),
    path("", include("portals.urls")),
    path("", include("calls.pbx_api.urls")),
    path("", include("inportal.urls")),
]
