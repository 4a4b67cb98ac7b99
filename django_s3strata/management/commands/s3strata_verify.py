"""Check that every PhysicalFile row's object exists, in its tier, with its size and ETag."""

from __future__ import annotations

from typing import Any

from django_s3strata import operations
from django_s3strata.management.base import Run, S3StrataCommand
from django_s3strata.models import PhysicalFile


class Command(S3StrataCommand):
    help = (
        "Find rows whose object is missing, sits in the other tier, or differs in size or ETag; --repair fixes the tier "
        "and records the object's ETag where no MD5 tells a change."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--repair", action="store_true", help="Point rows at their object when it sits in the other tier.")
        parser.add_argument("--concurrency", type=int, help="Parallel HEAD requests.")
        self.add_config_argument(parser)
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.finish_runs([self.run(config, options) for config in self.configs(options)], options)

    def run(self, config: str, options: dict[str, Any]) -> Run:
        """Verify configuration ``config``'s rows."""
        bar = self.progress("verifying", PhysicalFile.objects.for_config(config).count(), options)
        try:
            summary = operations.verify_files(
                repair=options["repair"], concurrency=options["concurrency"], progress=bar, config=config
            )
        finally:
            bar.close()
        lines = [
            f"Checked {summary.checked} row(s): {summary.ok} ok, {len(summary.missing)} missing, "
            f"{len(summary.wrong_tier)} in the other tier ({summary.repaired} repaired), "
            f"{len(summary.size_mismatch)} size mismatches, {len(summary.changed)} changed, "
            f"{len(summary.etag_mismatch)} ETag mismatches ({summary.etags_corrected} corrected)."
        ]
        lines += [f"  missing: #{m['id']} {m['tier']} {m['path']}" for m in summary.missing]
        lines += [f"  other tier: #{m['id']} {m['path']} is in {m['found_in']}" for m in summary.wrong_tier]
        lines += [f"  size: #{m['id']} {m['path']} row {m['row_size']} object {m['object_size']}" for m in summary.size_mismatch]
        lines += [f"  changed: #{m['id']} {m['path']} row MD5 {m['row_etag']} object {m['object_etag']}" for m in summary.changed]
        lines += [f"  ETag: #{m['id']} {m['path']} row {m['row_etag']} object {m['object_etag']}" for m in summary.etag_mismatch]
        lines += [
            f"  archive: #{m['id']} {m['path']} row says {m['row_state']}, the object is {m['object_state']}"
            for m in summary.archive_unknown
        ]
        return config, summary.as_dict(), "\n".join(lines), summary.problems, None
