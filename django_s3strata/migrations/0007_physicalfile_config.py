"""Add the configuration column (nullable: NULL is "default", so rows written by s3strata-ts stay valid)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("s3strata", "0006_restore_state")]

    operations = [
        migrations.AddField(
            model_name="physicalfile",
            name="config",
            field=models.TextField(blank=True, editable=False, null=True, verbose_name="configuration"),
        ),
    ]
