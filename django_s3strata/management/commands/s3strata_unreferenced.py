"""Report or delete unreferenced files: PhysicalFile rows that no field points at, older than the grace period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from django_s3strata.management.base import Run, S3StrataCommand
from django_s3strata.models import PhysicalFile
from django_s3strata.operations_unreferenced import BATCH_SIZE, sweep_unreferenced


class Command(S3StrataCommand):
    help = (
        "Report (default) or delete PhysicalFile rows that no ForeignKey and no FileField on S3StrataStorage "
        "references, older than the grace period (UNREFERENCED_GRACE)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--delete", action="store_true", help="Delete them (row, then object) instead of reporting.")
        parser.add_argument(
            "--grace", type=int, metavar="SECONDS", help="Only files created longer ago than this (UNREFERENCED_GRACE)."
        )
        parser.add_argument("--dry-run", action="store_true", help="With --delete: say what would be deleted; change nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N", help="Rows checked per query.")
        self.add_config_argument(parser)
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["grace"] is not None and options["grace"] < 0:
            raise CommandError(f"--grace {options['grace']} is invalid: give whole seconds, 0 or more.")
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size {options['batch_size']} is invalid: give 1 or more.")
        self.finish_runs([self.run(config, options) for config in self.configs(options)], options)

    def run(self, config: str, options: dict[str, Any]) -> Run:
        """Sweep configuration ``config``'s unreferenced files."""
        as_json, verbose = options["json"], options["verbosity"] > 0

        def show(record: PhysicalFile, action: str) -> None:
            if verbose and not as_json:
                self.stdout.write(
                    f"{action:12} {record.pk:>10} {record.size or 0:>12} {record.created_at.isoformat()} {record.path}"
                )

        progress = self.progress("unreferenced", None, options)
        try:
            summary = sweep_unreferenced(
                "delete" if options["delete"] else "report",
                grace=options["grace"],
                dry_run=options["dry_run"],
                batch_size=options["batch_size"],
                on_file=show,
                progress=progress,
                config=config,
            )
        finally:
            progress.close()
        text = (
            f"{summary.found} unreferenced file(s) older than {summary.grace} s, {summary.bytes} bytes; "
            f"deleted {summary.deleted}, kept {summary.kept} (referenced again), failed {summary.failed}"
            f"{' (dry run)' if summary.dry_run else ''}."
        )
        for error in summary.errors:
            text += f"\n  failed: {error['id']} {error['path']}: {error['error']}"
        first = summary.errors[0]["error"] if summary.errors else None
        return config, summary.as_dict(), text, summary.failed, first
