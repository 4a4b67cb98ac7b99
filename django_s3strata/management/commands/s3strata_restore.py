"""Request restores of archived files, or complete pending restores and the moves that wait for them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db.models import Q

from django_s3strata import operations_restore
from django_s3strata.core.restore import RETRIEVALS
from django_s3strata.management.base import Run, S3StrataCommand
from django_s3strata.models import PhysicalFile
from django_s3strata.querysets import config_q


class Command(S3StrataCommand):
    help = (
        "Request restores of archived files (GLACIER, DEEP_ARCHIVE) by id, or of every archived COLD file with --all; "
        "--complete checks pending restores and runs the moves that waited for them (what the beat task does)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("ids", nargs="*", help="Ids of the files to restore.")
        parser.add_argument("--all", action="store_true", help="Every COLD file the rows know as archived.")
        parser.add_argument("--days", type=int, help="Days the restored copy stays readable (default: RESTORE_DAYS).")
        parser.add_argument("--retrieval", help=f"{', '.join(RETRIEVALS)} (default: RESTORE_RETRIEVAL).")
        parser.add_argument("--dry-run", action="store_true", help="Look at each object (one HEAD); request nothing.")
        parser.add_argument("--complete", action="store_true", help="Check pending restores and run the waiting moves.")
        parser.add_argument("--limit", type=int, help="With --complete: rows to check (default: RESTORE_POLL_BATCH).")
        self.add_config_argument(parser)
        self.add_json_argument(parser)

    def _ids(self, options: dict[str, Any]) -> list[int]:
        try:
            ids = [int(i) for i in options["ids"]]
        except ValueError:
            bad = next(i for i in options["ids"] if not i.lstrip("-").isdigit())
            raise CommandError(f"{bad!r} is not a file id: give whole numbers, e.g. s3strata_restore 12 13.") from None
        if options["all"]:
            cold = PhysicalFile.objects.filter(self.config_filter(options), storage_tier="COLD")
            cold = cold.exclude(archive_state__in=["READABLE", "RESTORED"])
            ids += [r.pk for r in cold.iterator(chunk_size=1000) if not r.is_retrievable]
        if not ids:
            raise CommandError("No files given: name their ids, or use --all (or --complete to check pending restores).")
        return ids

    def config_filter(self, options: dict[str, Any]) -> Q:
        """Return the rows of the configurations ``--config`` chooses (all without it)."""
        q = Q()
        for config in self.configs(options):
            q |= config_q(config)
        return q

    def complete(self, config: str, options: dict[str, Any]) -> Run:
        """Complete configuration ``config``'s pending restores."""
        done = operations_restore.complete_restores(options["limit"], config=config)
        text = (
            f"Checked {done.checked} pending restore(s): {len(done.restored)} restored, {len(done.moved)} moved, "
            f"{len(done.restoring)} still restoring, {len(done.requested_again)} requested again, {len(done.failed)} failed."
        )
        first = done.failed[0]["error"] if done.failed else None
        return config, done.as_dict(), text, len(done.failed), first

    def handle(self, *args: Any, **options: Any) -> None:
        if options["complete"]:
            if options["ids"] or options["all"] or options["dry_run"]:
                raise CommandError("--complete takes no ids, --all or --dry-run: it checks every pending restore.")
            self.finish_runs([self.complete(config, options) for config in self.configs(options)], options)
            return
        summary = operations_restore.request_restores(
            self._ids(options), days=options["days"], retrieval=options["retrieval"], dry_run=options["dry_run"]
        )
        verb = "would request" if summary.dry_run else "requested"
        lines = [
            f"Restores ({summary.retrieval}, {summary.days} day(s)): {len(summary.requested)} {verb}, "
            f"{len(summary.in_progress)} already under way, {len(summary.not_archived)} not archived, "
            f"{len(summary.failed)} failed."
        ]
        lines += [f"  #{f['id']} {f['filename']}: {f['message']}" for f in summary.files]
        lines += [f"  #{f['id']} {f['filename']}: failed: {f['error']}" for f in summary.failed]
        first = summary.failed[0]["error"] if summary.failed else None
        self.finish(summary.as_dict(), "\n".join(lines), len(summary.failed), options, first)
