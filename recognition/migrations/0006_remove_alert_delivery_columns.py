"""Delivery moved to the alerts app (alerts.0002_move_delivery_data copied what these held)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("recognition", "0005_alert_rules"), ("alerts", "0002_move_delivery_data")]

    operations = [
        migrations.RemoveField(model_name="alert", name="emailed_at"),
        migrations.RemoveField(model_name="alert", name="webhook_attempts"),
        migrations.RemoveField(model_name="alert", name="webhook_error"),
        migrations.RemoveField(model_name="alert", name="webhook_status"),
        migrations.DeleteModel(name="UserSettings"),
    ]
