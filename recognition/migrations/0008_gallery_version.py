"""A version per owner's gallery, changed with every change of their references, so that a process can
keep a user's gallery in memory and know from one row whether it is stale (recognition.matching).

No rows yet: a missing row reads as version 0, and the first change of a gallery writes one.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('recognition', '0007_upload_limits'),
    ]

    operations = [
        migrations.CreateModel(
            name='GalleryVersion',
            fields=[
                ('owner', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to=settings.AUTH_USER_MODEL)),
                ('version', models.BigIntegerField(default=0)),
            ],
        ),
    ]
