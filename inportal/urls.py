from django.urls import include, path

from .api.urls import api_v1, schema_urls
from .launch import pages

app_name = "inportal"

urlpatterns = [
    path("bitrix24/app/", pages.app_page, name="app"),
    path("bitrix24/app/api/v1/", include(api_v1)),
    *schema_urls,
]
