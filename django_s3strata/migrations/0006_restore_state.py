"""Add the deep archive's restore columns (nullable, so rows written by s3strata-ts stay valid)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("s3strata", "0005_objectclaim")]

    operations = [
        migrations.AddField(
            model_name="physicalfile",
            name="archive_state",
            field=models.TextField(blank=True, editable=False, null=True, verbose_name="archive state"),
        ),
        migrations.AddField(
            model_name="physicalfile",
            name="restore_expires",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="restored until"),
        ),
        migrations.AddField(
            model_name="physicalfile",
            name="restore_requested_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="restore requested at"),
        ),
        migrations.AddField(
            model_name="physicalfile",
            name="restore_move_to",
            field=models.TextField(blank=True, editable=False, null=True, verbose_name="move after restore"),
        ),
        migrations.AddField(
            model_name="physicalfile",
            name="restore_hot_duration",
            field=models.BigIntegerField(blank=True, editable=False, null=True, verbose_name="hot duration after restore"),
        ),
    ]
