"""What the s3strata commands share: a terminal progress line, JSON output, the exit status, S3 failures as one line."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError

from django_s3strata.core.exceptions import AccessDeniedError, S3StrataError
from django_s3strata.core.types import StorageTier
from django_s3strata.services import config_names, get_file_manager

#: One configuration's run: (its name, the summary as a dict, the text, failures, the first error).
Run = tuple[str, dict[str, Any], str, int, str | None]


class Progress:
    """A one-line progress counter on a terminal; silent when not a TTY or at verbosity 0."""

    def __init__(self, stream: TextIO, label: str, total: int | None, enabled: bool) -> None:
        self.stream, self.label, self.total = stream, label, total
        self.enabled = enabled and getattr(stream, "isatty", lambda: False)()
        self.done = 0
        self._shown = 0.0

    def __call__(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._shown > 0.1 or self.done == self.total):
            self._shown = now
            if self.total:
                width = 30
                filled = int(width * self.done / self.total)
                bar = "#" * filled + "-" * (width - filled)
                self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
            else:
                self.stream.write(f"\r{self.label} {self.done}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


def one_line(exc: BaseException) -> str:
    """Return the exception's message on one line (a key or a server's message may hold newlines)."""
    return " ".join(str(exc).split())


class S3StrataCommand(BaseCommand):
    """Base of the s3strata commands: ``--json`` output and a non-zero exit when anything failed.

    An S3StrataError (a missing bucket, refused credentials, an endpoint that is down, a bad option)
    ends the command with one ``CommandError`` line that says what to fix, and exit status 1,
    never a traceback.
    """

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except S3StrataError as exc:
            raise CommandError(one_line(exc), returncode=1) from exc

    def add_json_argument(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON on stdout.")

    def add_config_argument(self, parser: Any) -> None:
        parser.add_argument(
            "--config", metavar="NAME", help="Only this S3STRATA configuration (default: every configuration, 'default' first)."
        )

    def configs(self, options: dict[str, Any]) -> list[str]:
        """Return the configurations to run for: ``--config``'s, else all; an unknown name is one CommandError line."""
        names = config_names()
        chosen = options.get("config")
        if chosen is None:
            return names
        if chosen not in names:
            raise CommandError(f"Unknown configuration {chosen!r}: settings.S3STRATA has {', '.join(names)}.", returncode=1)
        return [chosen]

    def finish_runs(self, runs: list[Run], options: dict[str, Any]) -> None:
        """Print one or several configurations' runs and fail when any failed.

        One run prints as ``finish`` does; several print each text under ``[name]`` and, with
        ``--json``, one object keyed by configuration name.
        """
        if len(runs) == 1:
            name, summary, text, failed, first = runs[0]
            self.finish(summary, text, failed, options, first, configs=[name])
            return
        summary = {name: run_summary for name, run_summary, *_ in runs}
        text = "\n".join(f"[{name}] {run_text}" for name, _, run_text, *_ in runs)
        failed = sum(run[3] for run in runs)
        first = next((run[4] for run in runs if run[4]), None)
        self.finish(summary, text, failed, options, first, configs=[run[0] for run in runs])

    def progress(self, label: str, total: int | None, options: dict[str, Any]) -> Progress:
        return Progress(
            self.stderr._out if hasattr(self.stderr, "_out") else sys.stderr,
            label,
            total,
            options["verbosity"] > 0 and not options.get("json"),
        )

    def finish(
        self,
        summary: dict[str, Any],
        text: str,
        failed: int,
        options: dict[str, Any],
        first_error: str | None = None,
        configs: list[str] | None = None,
    ) -> None:
        if options.get("json"):
            self.stdout.write(json.dumps(summary, default=str, sort_keys=True))
        elif options["verbosity"] > 0:
            self.stdout.write(text)
        if failed:
            # Failures the engine counted one file at a time may share one cause that a single HEAD of
            # each bucket names (a bucket that is gone answers every object request with a bare 404);
            # an S3StrataError raised here becomes the command's one line. A 403 is no verdict: HeadBucket
            # needs s3:ListBucket, which a narrow policy may leave out.
            for config in configs or [None]:
                store = get_file_manager(config).objectstore
                for tier in StorageTier:
                    with contextlib.suppress(AccessDeniedError):
                        store.require_bucket(tier)
            first = f" The first: {one_line(first_error)}" if first_error else ""
            raise CommandError(f"{failed} failure(s); see the summary above.{first}", returncode=1)
