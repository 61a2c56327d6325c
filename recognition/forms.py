"""Forms of the gallery pages; every choice of a person is limited to the signed-in user's people."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from recognition import signin
from recognition.models import FaceGroup, Person


class SignInLimitMixin:
    """Says plainly when sign-in is held by the brute-force limits (recognition.signin)."""

    def get_invalid_login_error(self) -> forms.ValidationError:
        seconds = getattr(self.request, "sign_in_retry_after", None)
        if seconds:
            return forms.ValidationError(signin.held_message(seconds), code="too_many_attempts")
        return super().get_invalid_login_error()


class SignInForm(SignInLimitMixin, AuthenticationForm):
    pass


class AdminSignInForm(SignInLimitMixin, AdminAuthenticationForm):
    pass


class PersonForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)
    image = forms.FileField(required=False, label="Reference photo", help_text="A photo that shows their face.")
    # When the name is in use already: add the photo to that person, or make a second one.
    if_exists = forms.ChoiceField(choices=[("", "ask"), ("add", "add"), ("new", "new")], required=False)


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


class GroupChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, group: FaceGroup) -> str:
        return f"group {group.pk} ({group.size} face{'' if group.size == 1 else 's'})"


class MergeGroupForm(forms.Form):
    target = GroupChoiceField(queryset=FaceGroup.objects.none(), label="Merge into", empty_label=None)

    def __init__(self, *args, group: FaceGroup, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        others = FaceGroup.objects.filter(owner_id=group.owner_id).exclude(pk=group.pk).with_size()
        self.fields["target"].queryset = others.filter(size__gt=0).order_by("-size", "id")


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username", "email"]
