"""Let anyone read the public prefix of the buckets: the bucket policy that the direct URLs of PUBLIC files need."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import CommandError

from django_s3strata.core.config import parse_tier
from django_s3strata.core.types import StorageTier
from django_s3strata.management.base import S3StrataCommand
from django_s3strata.services import get_file_manager


class Command(S3StrataCommand):
    help = (
        "Set each bucket's policy to one that lets anyone GET the keys under the public prefix (PUBLIC files' "
        "direct URLs answer 403 without it). This replaces the bucket's whole policy: a bucket that has another "
        "one is changed only with --yes or when you confirm."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tier", choices=["HOT", "COLD"], help="Only this tier's bucket (default: both).")
        parser.add_argument("--dry-run", action="store_true", help="Print the policy for each bucket; change nothing.")
        parser.add_argument("--yes", action="store_true", help="Replace a bucket policy that is already there without asking.")
        parser.add_argument(
            "--config", metavar="NAME", help="The S3STRATA configuration whose buckets to change (default: 'default')."
        )
        self.add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        store = get_file_manager(self.configs(options)[0] if options.get("config") else None).objectstore
        tiers = [parse_tier(options["tier"])] if options["tier"] else list(StorageTier)
        # Tiers that share a bucket get one policy that names both public prefixes.
        groups: dict[tuple[str, str], list[StorageTier]] = {}
        for tier in tiers:
            groups.setdefault((store.tier(tier).endpoint_url, store.tier(tier).bucket), []).append(tier)
        plans = [(group, store.public_read_bucket_policy(group[0])) for group in groups.values()]

        def label(group: list[StorageTier]) -> str:
            return f"{' and '.join(t.value for t in group)} bucket {store.tier(group[0]).bucket!r}"

        def readable(policy: dict[str, Any]) -> str:
            resources = policy["Statement"][0]["Resource"]
            return ", ".join(r.split("/", 1)[1] for r in ([resources] if isinstance(resources, str) else resources))

        summary: dict[str, Any] = {}
        if options["dry_run"]:
            lines = []
            for group, policy in plans:
                lines.append(f"{label(group)} would get this policy, replacing any it has:\n{json.dumps(policy, indent=2)}")
                summary.update({t.value: {"bucket": store.tier(t).bucket, "policy": policy, "action": "none"} for t in group})
            self.finish(summary, "\n".join(lines), 0, options)
            return

        # Read every bucket's policy before writing any: a refusal leaves all buckets as they were.
        actions: list[str] = []
        for group, policy in plans:
            current = store.bucket_policy(group[0])
            if current is None:
                actions.append("set")
            elif all(store.grants_public_read(t, current) for t in group):
                actions.append("unchanged")
            elif options["yes"] or self._confirm(label(group), current):
                actions.append("replaced")
            else:
                raise CommandError(
                    f"The {label(group)} already has a bucket policy that does not let anyone read {readable(policy)}, and "
                    "this command replaces a bucket's whole policy. Nothing was changed. Rerun with --yes to replace it, "
                    "or add the statement that --dry-run prints to that policy yourself."
                )
        lines = []
        for (group, policy), action in zip(plans, actions, strict=True):
            if action == "unchanged":
                lines.append(f"{label(group)}: its policy already lets anyone read {readable(policy)}; left unchanged.")
            else:
                store.put_bucket_policy(group[0], policy)
                was = "replaced its previous policy" if action == "replaced" else "it had no policy"
                lines.append(f"{label(group)}: anyone may now read {readable(policy)} ({was}).")
            summary.update({t.value: {"bucket": store.tier(t).bucket, "policy": policy, "action": action} for t in group})
        self.finish(summary, "\n".join(lines), 0, options)

    def _confirm(self, label: str, current: dict[str, Any]) -> bool:
        """Ask on a terminal whether to replace ``current``; never ask when stdin is not one (cron, CI, a pipe)."""
        if not sys.stdin.isatty():
            return False
        self.stdout.write(f"The {label} has this policy, which the new one would replace:\n{json.dumps(current, indent=2)}")
        return input("Replace it? [y/N] ").strip().lower() in ("y", "yes")
