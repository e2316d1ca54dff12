from django import forms


class OrgCreateForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organisation name",
                           widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Acme AI"}))


class OrgSettingsForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organisation name")
    slug = forms.SlugField(max_length=60, label="URL slug",
                           help_text="Appears in your dashboard URLs: /o/<slug>/. Old links stop working.")

    def __init__(self, *args, org=None, **kwargs):
        self.org = org
        super().__init__(*args, **kwargs)

    def clean_slug(self):
        from .models import Organization

        slug = self.cleaned_data["slug"].lower()
        if Organization.objects.filter(slug=slug).exclude(pk=self.org.pk).exists():
            raise forms.ValidationError("That slug is taken.")
        return slug


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default", widget=forms.TextInput(attrs={"placeholder": "production"}))
    scope = forms.ChoiceField(choices=[("ingest", "Ingest (SDK: events, ai-instrument)"),
                                       ("read", "Read (ingest + read API)")], initial="ingest")


class InviteForm(forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"placeholder": "teammate@example.com"}))
    role = forms.ChoiceField(choices=[("member", "Member"), ("viewer", "Viewer"), ("admin", "Admin"),
                                      ("owner", "Owner")], initial="member")
