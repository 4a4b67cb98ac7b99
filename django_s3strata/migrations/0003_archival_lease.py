"""Add the archival lease columns (nullable, so rows written by s3strata-ts stay valid)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("s3strata", "0002_size_content_type_path_index")]

    operations = [
        migrations.AddField(
            model_name="physicalfile",
            name="lease_owner",
            field=models.TextField(blank=True, editable=False, null=True, verbose_name="lease owner"),
        ),
        migrations.AddField(
            model_name="physicalfile",
            name="lease_until",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="lease until"),
        ),
    ]
