"""Thin views over the console's selectors and services; every one is staff only."""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from calls.models import Call
from console import as_admin, audit, dead_letters, health, issues, portal_page, search, timeline
from console.access import staff_required
from console.conf import console_settings
from console.forms import BulkReplayForm, LetterFilterForm, RestLogFilterForm
from console.models import AuditEntry
from portals.models import Portal, RestCallLog


@staff_required
def portals(request: HttpRequest) -> HttpResponse:
    return render(request, "console/portals.html", {"rows": health.portal_health()})


@staff_required
def portal(request: HttpRequest, portal_id: int) -> HttpResponse:
    get_object_or_404(Portal, pk=portal_id)
    page = portal_page.portal_page(portal_id)
    return render(request, "console/portal.html", {
        "page": page, "portal": page.portal, "issues": issues.issues(portal_id=portal_id)})


@staff_required
def portal_as_admin(request: HttpRequest, portal_id: int) -> HttpResponse:
    the_portal = get_object_or_404(Portal, pk=portal_id)
    view = as_admin.admin_view(the_portal)
    audit.record(request.user, "portal.view_as_admin", portal_id=the_portal.pk, target=f"portal:{the_portal.pk}")
    return render(request, "console/as_admin.html", {"view": view, "portal": the_portal})


@staff_required
def find(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:200]
    return render(request, "console/search.html", {"result": search.search(query), "q": query})


@staff_required
def call(request: HttpRequest, call_uuid: uuid.UUID) -> HttpResponse:
    the_call = get_object_or_404(Call.objects.select_related("portal", "connection"), uuid=call_uuid)
    return render(request, "console/call.html", {"story": timeline.call_story(the_call), "call": the_call})


@staff_required
def issue_list(request: HttpRequest) -> HttpResponse:
    return render(request, "console/issues.html", {"issues": issues.issues()})


@staff_required
def letters(request: HttpRequest) -> HttpResponse:
    form = LetterFilterForm(request.GET or None)
    flt = form.letter_filter() if form.is_valid() else dead_letters.LetterFilter()
    matching = dead_letters.matching(flt) if (not form.is_bound or form.is_valid()) else None
    context = {"form": form, "letters": list(matching[:console_settings().page_size]) if matching is not None else [],
               "count": matching.count() if matching is not None else 0,
               "dry_run": matching is not None and request.GET.get("dry_run") == "1"}
    return render(request, "console/dead_letters.html", context)


@staff_required
@require_POST
def letter_replay(request: HttpRequest, pk: int) -> HttpResponse:
    done = dead_letters.replay_one(request.user, pk)
    (messages.success if done else messages.warning)(
        request, f"Dead letter {pk} replayed." if done else f"Dead letter {pk} was not open: nothing replayed.")
    return _back(request)


@staff_required
@require_POST
def letter_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    done = dead_letters.dismiss_one(request.user, pk)
    (messages.success if done else messages.warning)(
        request, f"Dead letter {pk} dismissed." if done else f"Dead letter {pk} was not open.")
    return _back(request)


@staff_required
@require_POST
def letters_bulk_replay(request: HttpRequest) -> HttpResponse:
    form = BulkReplayForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Bulk replay refused: " + "; ".join(
            f"{name}: {' '.join(errs)}" for name, errs in form.errors.items()))
        return redirect("console:dead-letters")
    try:
        replayed = dead_letters.bulk_replay(request.user, form.letter_filter(), expected=form.cleaned_data["expected"])
    except dead_letters.CountChanged as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{replayed} dead letter(s) replayed.")
    return redirect("console:dead-letters")


def _back(request: HttpRequest) -> HttpResponse:
    """Back to the page the action came from, if it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("console:dead-letters")


def _rest_log(form: RestLogFilterForm):
    qs = RestCallLog.objects.select_related("portal").order_by("-created_at")
    if not form.is_valid():
        return qs.none()
    data = form.cleaned_data
    if data.get("portal"):
        qs = qs.filter(portal_id=data["portal"])
    if data.get("method"):
        qs = qs.filter(method__iexact=data["method"].strip())
    if data.get("errors_only"):
        qs = qs.exclude(error="")
    if data.get("since"):
        qs = qs.filter(created_at__gte=data["since"])
    if data.get("until"):
        qs = qs.filter(created_at__lt=data["until"])
    return qs


@staff_required
def rest_log(request: HttpRequest) -> HttpResponse:
    form = RestLogFilterForm(request.GET or None)
    entries = _rest_log(form) if form.is_bound else RestCallLog.objects.select_related("portal").order_by("-created_at")
    return render(request, "console/rest_log.html", {
        "form": form, "entries": list(entries[:console_settings().page_size]),
        "keep_days": max(3, int(settings.BITRIX24_REST_LOG_DAYS))})


@staff_required
def rest_log_export(request: HttpRequest, portal_id: int) -> HttpResponse:
    """One portal's requests (redacted as logged), as JSON for a Bitrix24 support ticket."""
    the_portal = get_object_or_404(Portal, pk=portal_id)
    form = RestLogFilterForm({**request.GET.dict(), "portal": portal_id})
    if not form.is_valid():
        return HttpResponse(json.dumps({"error": "invalid_filter", "fields": form.errors}), status=400,
                            content_type="application/json")
    rows = [{"at": e.created_at, "method": e.method, "url": e.url, "status": e.status, "error": e.error,
             "duration_ms": e.duration_ms, "request": e.request, "response": e.response}
            for e in _rest_log(form).order_by("created_at")]
    audit.record(request.user, "rest_log.export", portal_id=the_portal.pk, target=f"portal:{the_portal.pk}",
                 detail={"rows": len(rows), "filter": {k: str(v) for k, v in form.cleaned_data.items() if v}})
    body = json.dumps({"portal": {"member_id": the_portal.member_id, "domain": the_portal.domain},
                       "requests": rows}, cls=DjangoJSONEncoder, ensure_ascii=False, indent=1)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rest-log-{the_portal.member_id}.json"'
    return response


@staff_required
def audit_log(request: HttpRequest) -> HttpResponse:
    return render(request, "console/audit.html", {
        "entries": AuditEntry.objects.select_related("user", "portal")[:console_settings().page_size]})
