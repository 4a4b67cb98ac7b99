"""Add the table of object claims (writers' claims on object keys; not part of s3strata's schema)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("s3strata", "0004_etag")]

    operations = [
        migrations.CreateModel(
            name="ObjectClaim",
            fields=[
                ("digest", models.CharField(max_length=64, primary_key=True, serialize=False, verbose_name="digest")),
                ("storage_tier", models.CharField(max_length=4, verbose_name="storage tier")),
                ("key", models.TextField(verbose_name="key")),
                ("owner", models.CharField(max_length=255, verbose_name="owner")),
                ("until", models.DateTimeField(db_index=True, verbose_name="until")),
            ],
            options={
                "verbose_name": "object claim",
                "verbose_name_plural": "object claims",
                "db_table": "s3strata_objectclaim",
            },
        ),
    ]
