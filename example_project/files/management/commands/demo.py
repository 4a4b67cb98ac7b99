"""Run the demo: an in-process S3 server (unless S3STRATA_ENDPOINT is set), a fresh database, an admin login, the site."""

from __future__ import annotations

import logging
import secrets
import socket
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from django_s3strata.core import StorageTier
from django_s3strata.services import get_file_manager, reset_file_manager


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Command(BaseCommand):
    help = "Start the example site on an embedded S3 server and SQLite, with a demo admin login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="Where the site listens.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.S3STRATA_EMBEDDED:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            port = _free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            # The embedded S3 forgets everything on exit, so the demo starts from an empty database too.
            db = settings.DATABASES["default"]["NAME"]
            if db and str(db) != ":memory:":
                from pathlib import Path

                Path(db).unlink(missing_ok=True)
            settings.S3STRATA = {**settings.S3STRATA, "PORT": port}
            reset_file_manager()
            store = get_file_manager().objectstore
            for tier in StorageTier:
                store.client(tier).create_bucket(Bucket=store.tier(tier).bucket)
                store.apply_public_read_policy(tier)
            where = f"an in-process S3 server at {store.tier(StorageTier.HOT).endpoint_url}"
        else:
            where = f"S3 at {get_file_manager().objectstore.tier(StorageTier.HOT).endpoint_url}"
        call_command("migrate", verbosity=0, interactive=False)
        password = secrets.token_urlsafe(9)
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="demo", defaults={"is_staff": True, "is_superuser": True})
        user.set_password(password)
        user.save()
        url = f"http://{options['addrport']}/"
        self.stdout.write(
            f"\ndjango-s3strata demo on {where}\n"
            f"  site:  {url}\n  admin: {url}admin/  (login: demo / {password})\n"
            "Stop with Ctrl-C.\n"
        )
        self.stdout.flush()
        call_command("runserver", options["addrport"], use_reloader=False, skip_checks=True)
