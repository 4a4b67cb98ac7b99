"""List, delete or adopt orphan objects (objects with no PhysicalFile row of their tier and key)."""

from __future__ import annotations

import json
from typing import Any

from django_s3strata import operations
from django_s3strata.core.types import OrphanObject
from django_s3strata.management.base import Run, S3StrataCommand


class Command(S3StrataCommand):
    help = "List, delete or adopt orphan objects older than the grace period, streaming each bucket's listing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["list", "delete", "adopt"])
        parser.add_argument("--prefix", help="Only keys under this prefix (e.g. 'public/2026/').")
        parser.add_argument("--tier", choices=["HOT", "COLD", "hot", "cold"], help="Only this tier.")
        parser.add_argument(
            "--older-than", type=int, metavar="SECONDS", help="Grace period: skip younger objects (ORPHAN_GRACE_PERIOD)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted or adopted; change nothing.")
        self.add_config_argument(parser)
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.finish_runs([self.run(config, options) for config in self.configs(options)], options)

    def run(self, config: str, options: dict[str, Any]) -> Run:
        """Sweep configuration ``config``'s buckets."""
        mode = {"list": "report", "delete": "delete", "adopt": "adopt"}[options["action"]]
        as_json, verbose = options["json"], options["verbosity"] > 0

        def show(orphan: OrphanObject, action: str) -> None:
            if as_json:
                return
            if verbose:
                when = orphan.last_modified.isoformat() if orphan.last_modified else "-"
                self.stdout.write(f"{action:8} {orphan.tier.value:4} {orphan.size or 0:>12} {when} {orphan.key}")

        summary = operations.sweep_orphans(
            mode,
            prefix=options["prefix"],
            tier=options["tier"],
            older_than=options["older_than"],
            dry_run=options["dry_run"],
            on_orphan=show,
            config=config,
        )
        text = (
            f"{summary.found} orphan(s), {summary.bytes} bytes; deleted {summary.deleted}, adopted {summary.adopted}, "
            f"failed {summary.failed}{' (dry run)' if summary.dry_run else ''}."
        )
        for error in summary.errors:
            text += f"\n  failed: {error['tier']} {error['key']}: {error['error']}"
        first = summary.errors[0]["error"] if summary.errors else None
        return config, json.loads(json.dumps(summary.as_dict())), text, summary.failed, first
