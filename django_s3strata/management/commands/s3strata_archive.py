"""Move expired HOT files to COLD now (what the Celery beat entry does on a schedule)."""

from __future__ import annotations

from typing import Any

from django_s3strata import operations
from django_s3strata.management.base import Run, S3StrataCommand
from django_s3strata.models import PhysicalFile


class Command(S3StrataCommand):
    help = "Move expired HOT files to COLD (copy, verify, commit, delete), a batch of claimed rows at a time."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would move; move nothing.")
        parser.add_argument("--limit", type=int, help="Move at most this many files.")
        parser.add_argument("--batch-size", type=int, help="Rows claimed per transaction (ARCHIVE_BATCH_SIZE).")
        parser.add_argument("--concurrency", type=int, help="Parallel moves (ARCHIVE_CONCURRENCY).")
        self.add_config_argument(parser)
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.finish_runs([self.run(config, options) for config in self.configs(options)], options)

    def run(self, config: str, options: dict[str, Any]) -> Run:
        """Archive configuration ``config``'s expired files."""
        total = PhysicalFile.objects.expired().for_config(config).count()
        if options["limit"]:
            total = min(total, options["limit"])
        bar = self.progress("archiving", total, options)
        try:
            summary = operations.archive_expired(
                dry_run=options["dry_run"],
                limit=options["limit"],
                batch_size=options["batch_size"],
                concurrency=options["concurrency"],
                progress=bar,
                config=config,
            )
        finally:
            bar.close()
        if summary.dry_run:
            text = f"Would move {len(summary.would_move)} file(s) to COLD: {summary.would_move}"
        else:
            text = (
                f"Moved {summary.moved} file(s) ({summary.bytes_moved} bytes) to COLD, skipped {summary.skipped}, "
                f"failed {summary.failed}, in {summary.duration:.1f}s."
            )
            for failure in summary.failures:
                text += f"\n  failed: #{failure['id']} {failure['path']}: {failure['error']}"
        first = summary.failures[0]["error"] if summary.failures else None
        return config, summary.as_dict(), text, summary.failed, first
