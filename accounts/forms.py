from django import forms


class OrgCreateForm(forms.Form):
    name = forms.CharField(max_length=120, label="Organisation name",
                           widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Acme AI"}))
