"""Check that every PhysicalFile row's object exists, in its tier, with its size."""

from __future__ import annotations

from typing import Any

from django_s3strata import operations
from django_s3strata.management.base import S3StrataCommand
from django_s3strata.models import PhysicalFile


class Command(S3StrataCommand):
    help = "Find rows whose object is missing, sits in the other tier, or differs in size; --repair fixes the tier."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--repair", action="store_true", help="Point rows at their object when it sits in the other tier.")
        parser.add_argument("--concurrency", type=int, help="Parallel HEAD requests.")
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        bar = self.progress("verifying", PhysicalFile.objects.count(), options)
        try:
            summary = operations.verify_files(repair=options["repair"], concurrency=options["concurrency"], progress=bar)
        finally:
            bar.close()
        lines = [
            f"Checked {summary.checked} row(s): {summary.ok} ok, {len(summary.missing)} missing, "
            f"{len(summary.wrong_tier)} in the other tier ({summary.repaired} repaired), "
            f"{len(summary.size_mismatch)} size mismatches."
        ]
        lines += [f"  missing: #{m['id']} {m['tier']} {m['path']}" for m in summary.missing]
        lines += [f"  other tier: #{m['id']} {m['path']} is in {m['found_in']}" for m in summary.wrong_tier]
        lines += [f"  size: #{m['id']} {m['path']} row {m['row_size']} object {m['object_size']}" for m in summary.size_mismatch]
        self.finish(summary.as_dict(), "\n".join(lines), summary.problems, options)
