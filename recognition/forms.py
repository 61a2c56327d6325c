"""Forms of the gallery pages; every choice of a person is limited to the signed-in user's people."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from recognition.models import Person


class PersonForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    image = forms.FileField(required=False, label="Reference photo", help_text="A photo that shows their face.")


class RenameForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)


class ReferenceForm(forms.Form):
    image = forms.FileField(label="Reference photo")


class NameFaceForm(forms.Form):
    """Pick one of the user's people, or type the name of a new one."""

    person = forms.ModelChoiceField(queryset=Person.objects.none(), required=False, empty_label="choose a person")
    new_name = forms.CharField(max_length=200, required=False, strip=True, label="or a new person")

    def __init__(self, *args, owner, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["person"].queryset = Person.objects.filter(owner=owner)

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("person")) == bool(data.get("new_name")):
            raise forms.ValidationError("Choose a person or type a new name (one of them).")
        return data


class MergeForm(forms.Form):
    target = forms.ModelChoiceField(queryset=Person.objects.none(), label="Merge into", empty_label=None)

    def __init__(self, *args, person: Person, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = Person.objects.filter(owner_id=person.owner_id).exclude(pk=person.pk)


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username", "email"]
