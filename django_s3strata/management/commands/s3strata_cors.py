"""Let pages on the given origins upload straight to the buckets (a CORS rule for direct uploads)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from django_s3strata.core import direct
from django_s3strata.core.config import parse_tier
from django_s3strata.core.exceptions import S3StrataError
from django_s3strata.core.types import StorageTier
from django_s3strata.management.base import Run, S3StrataCommand
from django_s3strata.services import get_file_manager


class Command(S3StrataCommand):
    help = "Add (or replace) the CORS rule that lets browsers on --origin POST and PUT direct uploads to the buckets."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--origin", action="append", required=True, help="A site allowed to upload, e.g. https://app.example.com (repeat)."
        )
        parser.add_argument("--tier", choices=["HOT", "COLD"], help="Only this tier's bucket (default: both).")
        self.add_config_argument(parser)
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        self.finish_runs([self.run(config, options) for config in self.configs(options)], options)

    def run(self, config: str, options: dict[str, Any]) -> Run:
        """Apply the rule to configuration ``config``'s buckets."""
        store = get_file_manager(config).objectstore
        tiers = [parse_tier(options["tier"])] if options["tier"] else list(StorageTier)
        done: dict[str, Any] = {}
        try:
            for tier in tiers:
                done[tier.value] = {"bucket": store.tier(tier).bucket, "rules": direct.apply_cors(store, tier, options["origin"])}
        except S3StrataError as exc:
            raise CommandError(str(exc)) from exc
        lines = [
            f"{tier}: bucket {v['bucket']!r} accepts uploads from {', '.join(options['origin'])}." for tier, v in done.items()
        ]
        return config, done, "\n".join(lines), 0, None
