"""Run the demo: an in-process S3 server (unless S3STRATA_ENDPOINT is set), a fresh database, an admin login, the site."""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands.runserver import naiveip_re

from django_s3strata.core import StorageTier
from django_s3strata.services import get_file_manager, reset_file_manager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, only the port check
    fcntl = None  # type: ignore[assignment]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_addrport(addrport: str) -> tuple[str, int]:
    """Return (host, port) of ``addrport`` as runserver reads it ("8000", "0.0.0.0:8000", "[::1]:8000")."""
    match = re.match(naiveip_re, addrport)
    if match is None:
        raise CommandError(f'"{addrport}" is not a port or an address:port pair (for example 127.0.0.1:8000).')
    addr, _ipv4, ipv6, _fqdn, port = match.groups()
    return (addr[1:-1] if ipv6 else addr or "127.0.0.1"), int(port)


def check_free(host: str, port: int) -> None:
    """Raise CommandError if the site could not listen on host:port (something else is there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As runserver's server does: a port left in TIME_WAIT is free, a listening one is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"{where} is already in use (another demo?): stop it, or give another address, "
                    f"e.g. ./dev demo 127.0.0.1:{port + 1}"
                ) from None
            raise CommandError(f"cannot listen on {where}: {exc.strerror}") from None


def lock_database(db: Path) -> int | None:
    """Take the lock that says a demo uses ``db`` and return its file descriptor (held until the process ends).

    The lock is an flock on ``<db>.lock``: the kernel drops it when its holder exits, however it exits,
    so a stale lock never blocks the next demo.
    """
    if fcntl is None:
        return None
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise CommandError(
            f"another demo (pid {holder}) is using {db}: stop it first, or set S3STRATA_DEMO_DATA to another directory"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


class Command(BaseCommand):
    help = "Start the example site on an embedded S3 server and SQLite, with a demo admin login."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "addrport", nargs="?", default="127.0.0.1:8000", help="Where the site listens: a port or address:port."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Refuse before touching anything: a second demo must not reset the database of a running one.
        host, port = parse_addrport(options["addrport"])
        check_free(host, port)
        db = settings.DATABASES["default"]["NAME"]
        on_disk = bool(db) and str(db) != ":memory:"
        if on_disk:
            self._lock = lock_database(Path(db))
        if settings.S3STRATA_EMBEDDED:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            s3_port = _free_port()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
            server.start()
            # The embedded S3 forgets everything on exit, so the demo starts from an empty database too
            # (rows of the last run would name objects that are gone). The lock makes it ours alone.
            if on_disk:
                Path(db).unlink(missing_ok=True)
            settings.S3STRATA = {**settings.S3STRATA, "PORT": s3_port}
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
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a wildcard is reached on loopback
        url = f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"
        self.stdout.write(
            f"\ndjango-s3strata demo on {where}\n"
            f"  site:  {url}\n  admin: {url}admin/  (login: demo / {password})\n"
            "Stop with Ctrl-C.\n"
        )
        self.stdout.flush()
        call_command("runserver", options["addrport"], use_reloader=False, skip_checks=True)
