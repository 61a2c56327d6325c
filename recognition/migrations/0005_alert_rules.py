from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("recognition", "0004_gallery_as_people_use_it")]

    operations = [
        migrations.AddField(model_name="person", name="alerts_enabled", field=models.BooleanField(default=True, verbose_name="alerts")),
        migrations.AddField(
            model_name="person", name="alert_channels", field=models.JSONField(blank=True, default=list)
        ),
        migrations.AddField(model_name="alert", name="earlier", field=models.BooleanField(default=False)),
    ]
