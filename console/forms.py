from __future__ import annotations

from django import forms

from calls.models import DeadLetter
from console.dead_letters import LetterFilter


class LetterFilterForm(forms.Form):
    portal = forms.IntegerField(required=False, min_value=1, label="Portal id")
    kind = forms.ChoiceField(required=False, choices=[("", "any"), *DeadLetter.Kind.choices])
    reason = forms.CharField(required=False, max_length=200, label="Reason contains")
    since = forms.DateTimeField(required=False, label="Created since (UTC)",
                                widget=forms.DateTimeInput(attrs={"placeholder": "2026-12-03 10:00"}))

    def letter_filter(self) -> LetterFilter:
        data = self.cleaned_data
        return LetterFilter(portal_id=data.get("portal"), kind=data.get("kind") or "",
                            reason=(data.get("reason") or "").strip(), since=data.get("since"))


class BulkReplayForm(LetterFilterForm):
    expected = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class RestLogFilterForm(forms.Form):
    portal = forms.IntegerField(required=False, min_value=1, label="Portal id")
    method = forms.CharField(required=False, max_length=200)
    errors_only = forms.BooleanField(required=False, label="Errors only")
    since = forms.DateTimeField(required=False, label="Since (UTC)")
    until = forms.DateTimeField(required=False, label="Until (UTC)")
