"""Query-string forms of the dashboard pages (GET): they validate filters, the selectors do the reading."""

from __future__ import annotations

from django import forms

from .selectors import RunFilters
from .windows import NAMED_WINDOWS, Window, WindowError, window_from_params

WINDOW_CHOICES = [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]
STATUS_CHOICES = [("", "Any status"), ("ok", "ok"), ("error", "error"), ("rate_limited", "rate limited"),
                  ("timeout", "timeout"), ("cancelled", "cancelled")]


class WindowForm(forms.Form):
    window = forms.ChoiceField(choices=WINDOW_CHOICES, required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        params = {"window": data.get("window") or "", "since": "", "until": ""}
        if data.get("since"):
            params["since"] = data["since"].isoformat()
        if data.get("until"):
            # a date means "through the end of that day"
            params["until"] = data["until"].isoformat() + "T23:59:59"
        try:
            data["window_obj"] = window_from_params(params)
        except WindowError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data

    @property
    def window_obj(self) -> Window:
        if self.is_valid():
            return self.cleaned_data["window_obj"]
        return Window.named("24h")


class RunFilterForm(WindowForm):
    agent = forms.ChoiceField(required=False, choices=[("", "Any agent")])
    customer_id = forms.CharField(required=False, max_length=256, label="Customer",
                                  widget=forms.TextInput(attrs={"placeholder": "customer id"}))
    section = forms.CharField(required=False, max_length=1024, label="Section",
                              widget=forms.TextInput(attrs={"placeholder": "section path prefix"}))
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES)
    model = forms.ChoiceField(required=False, choices=[("", "Any model")])
    untracked = forms.BooleanField(required=False, label="Untracked calls only",
                                   help_text="Runs with at least one call without a section label.")

    def __init__(self, *args, agents: list[tuple[str, str]] = (), models: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        agent_choices = [("", "Any agent")] + list(agents)
        model_choices = [("", "Any model")] + [(m, m) for m in models]
        # A value from a shared link stays selectable even when the window has no such row.
        for name, choices in (("agent", agent_choices), ("model", model_choices)):
            value = self.data.get(name) if self.data else None
            if value and "\x00" not in value and value not in {c[0] for c in choices}:
                choices.append((value, value))
            self.fields[name].choices = choices

    @property
    def filters(self) -> RunFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return RunFilters(customer_id=(data.get("customer_id") or "").strip(), status=data.get("status") or "",
                          section=(data.get("section") or "").strip(),
                          model=data.get("model") or "", agent=data.get("agent") or "",
                          untracked=bool(data.get("untracked")))


class ExportForm(RunFilterForm):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")], initial="csv",
                               widget=forms.RadioSelect)


assert set(dict(WINDOW_CHOICES)) == set(NAMED_WINDOWS)
