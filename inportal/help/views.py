"""``GET help``: the setup instruction in the viewer's language, the same text as the Marketplace card."""

from __future__ import annotations

from django.utils.translation import get_language
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..api.base import InportalView
from ..api.errors import ApiError
from ..api.schema import READ_ERRORS
from ..conf import inportal_settings
from ..language import FALLBACK, frame_language


class HelpSerializer(serializers.Serializer):
    lang = serializers.ChoiceField(choices=["ru", "en"])
    markdown = serializers.CharField(help_text="the instruction as Markdown (the frontend renders it)")


class HelpView(InportalView):
    @extend_schema(operation_id="help", summary="The setup instruction", responses={200: HelpSerializer, **READ_ERRORS})
    def get(self, request: Request) -> Response:
        lang = frame_language(get_language())
        folder = inportal_settings().help_dir
        for candidate in (lang, FALLBACK):
            path = folder / f"setup.{candidate}.md"
            if path.is_file():
                return Response({"lang": candidate, "markdown": path.read_text(encoding="utf-8")})
        raise ApiError("not_found", _("The setup instruction is missing."), status=404)
