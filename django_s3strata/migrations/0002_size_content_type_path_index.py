"""Add the nullable size and content type columns and the index on path (beyond s3strata's schema)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("s3strata", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="physicalfile",
            name="size",
            field=models.BigIntegerField(blank=True, null=True, verbose_name="size"),
        ),
        migrations.AddField(
            model_name="physicalfile",
            name="content_type",
            field=models.TextField(blank=True, null=True, verbose_name="content type"),
        ),
        migrations.AddIndex(
            model_name="physicalfile",
            index=models.Index(fields=["path"], name="s3strata_path_idx"),
        ),
    ]
