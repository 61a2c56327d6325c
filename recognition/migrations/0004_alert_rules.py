from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("recognition", "0003_face_groups")]

    operations = [
        migrations.AddField(model_name="person", name="alerts_enabled", field=models.BooleanField(default=True, verbose_name="alerts")),
        migrations.AddField(
            model_name="person", name="alert_channels", field=models.JSONField(blank=True, default=list)
        ),
        migrations.AddField(model_name="alert", name="earlier", field=models.BooleanField(default=False)),
    ]
