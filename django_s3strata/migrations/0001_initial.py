"""Create PhysicalFile with s3strata's columns only, so ``migrate --fake-initial`` accepts a table Prisma made.

With ``SHARED_TABLE`` the table is made as Prisma's migration makes it: the enum type
``"StorageTier"``, ``timestamp(3)`` columns, ``created_at`` defaulting to now, and Prisma's index name.
"""

import django.utils.timezone
from django.db import migrations, models

import django_s3strata.models
from django_s3strata.models import SHARED_TABLE


def create_enum(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DO $$ BEGIN CREATE TYPE \"StorageTier\" AS ENUM ('HOT', 'COLD'); EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        )


def prisma_details(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('ALTER TABLE "PhysicalFile" ALTER COLUMN "created_at" SET DEFAULT CURRENT_TIMESTAMP')
        schema_editor.execute(
            'CREATE INDEX IF NOT EXISTS "PhysicalFile_storage_tier_hot_until_idx" ON "PhysicalFile" ("storage_tier", "hot_until")'
        )


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PhysicalFile",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "storage_tier",
                    django_s3strata.models.StorageTierField(
                        choices=[("HOT", "HOT"), ("COLD", "COLD")], default="HOT", max_length=4, verbose_name="storage tier"
                    ),
                ),
                ("filename", models.TextField(verbose_name="filename")),
                ("path", models.TextField(verbose_name="path")),
                ("hot_until", django_s3strata.models.UTCDateTimeField(blank=True, null=True, verbose_name="hot until")),
                (
                    "created_at",
                    django_s3strata.models.UTCDateTimeField(default=django.utils.timezone.now, verbose_name="created at"),
                ),
                (
                    "updated_at",
                    django_s3strata.models.UTCDateTimeField(default=django.utils.timezone.now, verbose_name="updated at"),
                ),
            ],
            options={
                "verbose_name": "physical file",
                "verbose_name_plural": "physical files",
                "db_table": "PhysicalFile" if SHARED_TABLE else "s3strata_physicalfile",
                "ordering": ["-id"],
                "permissions": [
                    ("change_tier_physicalfile", "Can move files between HOT and COLD"),
                    ("change_visibility_physicalfile", "Can make files public or private"),
                    ("manage_orphans_physicalfile", "Can list, adopt and delete orphan objects"),
                ],
                "indexes": []
                if SHARED_TABLE
                else [models.Index(fields=["storage_tier", "hot_until"], name="s3strata_tier_hot_until_idx")],
            },
        ),
    ]
    if SHARED_TABLE:
        operations = [
            migrations.RunPython(create_enum, migrations.RunPython.noop),
            *operations,
            migrations.RunPython(prisma_details, migrations.RunPython.noop),
        ]
