"""Add the ETag column (nullable, so rows written by s3strata-ts stay valid)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("s3strata", "0003_archival_lease")]

    operations = [
        migrations.AddField(
            model_name="physicalfile",
            name="etag",
            field=models.TextField(blank=True, editable=False, null=True, verbose_name="ETag"),
        ),
    ]
