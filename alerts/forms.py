"""The alert settings form and a person's alert rules."""

from __future__ import annotations

from django import forms

from alerts.channels import CHANNELS
from alerts.models import AlertSettings
from recognition.models import Person


class AlertSettingsForm(forms.ModelForm):
    """Every channel's settings and the user's rules. A new channel adds its fields here."""

    webhook_url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        label="Webhook URL",
        help_text="Each alert is POSTed here as signed JSON (http or https). Leave empty for none.",
    )
    quiet_start = forms.TimeField(required=False, label="Quiet from", widget=forms.TimeInput(attrs={"type": "time"}))
    quiet_end = forms.TimeField(required=False, label="until", widget=forms.TimeInput(attrs={"type": "time"}))

    class Meta:
        model = AlertSettings
        fields = [
            "email", "email_address", "webhook_url", "mqtt_url", "mqtt_prefix", "mqtt_discovery",
            "quiet_start", "quiet_end", "alert_unknown",
        ]  # fmt: skip
        labels = {"email_address": "Email address"}
        help_texts = {
            "email_address": "Alerts are emailed only once you open the link we send to this address.",
            "mqtt_url": "mqtt://user:password@host:1883 or mqtts://...; leave empty for none.",
            "mqtt_prefix": "Default: photosite/ and your user name. Alerts go to this prefix, /person/, the name.",
            "mqtt_discovery": "Publish a retained config per person: Home Assistant makes a 'last seen' sensor.",
            "alert_unknown": "A face that matches nobody in a new photo.",
        }
        widgets = {"mqtt_url": forms.TextInput(attrs={"placeholder": "mqtt://host:1883", "autocomplete": "off"})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["webhook_url"].widget.attrs["placeholder"] = "https://"
        self.fields["mqtt_prefix"].widget.attrs["placeholder"] = f"photosite/{self.instance.user.get_username()}"

    def clean(self) -> dict:
        data = super().clean()
        if bool(data.get("quiet_start")) != bool(data.get("quiet_end")):
            raise forms.ValidationError("Quiet hours need both a start and an end (or neither).")
        return data


class PersonAlertsForm(forms.ModelForm):
    alert_channels = forms.MultipleChoiceField(
        choices=[(name, cls.label) for name, cls in CHANNELS.items()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Channels",
        help_text="None ticked: every channel you set up.",
    )

    class Meta:
        model = Person
        fields = ["alerts_enabled", "alert_channels"]
        labels = {"alerts_enabled": "Alert me when they are found"}
