from django.urls import path

from . import views

app_name = "portals"

urlpatterns = [
    path("bitrix24/install/", views.install, name="install"),
    path("bitrix24/events/", views.events, name="events"),
    path("bitrix24/oauth/start/", views.oauth_start, name="oauth-start"),
    path("bitrix24/oauth/callback/", views.oauth_callback, name="oauth-callback"),
]
