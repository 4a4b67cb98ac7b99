import django.db.models.deletion
from django.db import migrations, models

import django_s3strata.fields
import django_s3strata.storage


class Migration(migrations.Migration):
    dependencies = [
        ("s3strata", "0007_physicalfile_config"),
        ("testapp", "0003_profile"),
    ]

    operations = [
        migrations.CreateModel(
            name="Export",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                (
                    "sheet",
                    models.FileField(
                        blank=True,
                        max_length=255,
                        storage=django_s3strata.storage.S3StrataStorage(config="exports"),
                        upload_to="sheets",
                    ),
                ),
                (
                    "archive",
                    django_s3strata.fields.PhysicalFileField(
                        blank=True,
                        config="exports",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="s3strata.physicalfile",
                        upload_to="exports",
                    ),
                ),
            ],
        ),
    ]
