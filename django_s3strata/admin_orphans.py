"""The admin's orphans page: orphans listed per tier, and a selection adopted or deleted by the core's orphan engine.

The page lists through ``sweep_orphans`` (report) and acts through ``sweep_orphan_keys``: the same
engine as the sweep task, the command and the core API, so adoption records the same thing
whichever of them runs it. ``PhysicalFileAdmin`` only wires the URL and the permission. With
several ``S3STRATA`` configurations the page shows one at a time, chosen by ``?config=``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .conf import DEFAULT, config_names, get_settings
from .core.config import ResolvedTier, parse_tier
from .core.exceptions import InvalidKeyError, InvalidOptionError
from .core.keys import check_key
from .core.orphans import OrphanOutcome, OrphanPolicy
from .core.types import OrphanObject, StorageTier
from .services import get_file_manager

__all__ = ["ORPHANS_PER_PAGE", "OrphansPage"]

#: Orphans shown on one page, and the most one request may adopt or delete.
ORPHANS_PER_PAGE = 50
#: What a person may do with the orphans they select.
PAGE_ACTIONS = ("adopt", "delete")


class _PageFull(Exception):
    """Stops the listing once the page, and one orphan past it, have been found."""


def _inside_prefixes(tier: ResolvedTier, key: str) -> bool:
    """Return True when the page may list, adopt or delete ``key``: inside one of the tier's prefixes."""
    try:
        check_key(tier, key)
    except InvalidKeyError:
        return False
    return True


def human_duration(seconds: int) -> str:
    """Return ``seconds`` in the largest whole unit that reads well: "60 seconds", "90 minutes", "24 hours", "7 days"."""
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return ngettext("%(n)d day", "%(n)d days", seconds // 86400) % {"n": seconds // 86400}
    if seconds >= 3600 and seconds % 3600 == 0:
        return ngettext("%(n)d hour", "%(n)d hours", seconds // 3600) % {"n": seconds // 3600}
    if seconds >= 2 * 60 and seconds % 60 == 0:
        return ngettext("%(n)d minute", "%(n)d minutes", seconds // 60) % {"n": seconds // 60}
    return ngettext("%(n)d second", "%(n)d seconds", seconds) % {"n": seconds}


def _config(value: str | None) -> str:
    """Return the configuration a request names (``config``), or "default" for none or an unknown one."""
    return value if value and value in config_names() else DEFAULT


def _also(config: str) -> str:
    """Return the query string's ``&config=`` part of links back to the page ("" for "default")."""
    return "" if config == DEFAULT else f"&{urlencode({'config': config})}"


def _refusal(key: str, tier: StorageTier, config: str = DEFAULT) -> str:
    """Return the message for a key outside the tier's prefixes (forged, or from a stale page)."""
    resolved = get_settings(config).layout.tier(tier)
    return _("%(key)r is refused: only keys under the %(tier)s tier's prefixes %(prefixes)s can be adopted or deleted.") % {
        "key": key if len(key) <= 200 else key[:200] + "…",
        "tier": tier.value,
        "prefixes": f"{resolved.public_prefix}/, {resolved.private_prefix}/",
    }


class OrphansPage:
    """The orphans page of a ModelAdmin that has ``has_manage_orphans_permission``."""

    def __init__(self, model_admin: admin.ModelAdmin) -> None:  # type: ignore[type-arg]
        self.model_admin = model_admin

    def view(self, request: HttpRequest) -> HttpResponse:
        """List orphans per tier with paging and a prefix filter; adopt or delete them after confirmation."""
        if not self.model_admin.has_manage_orphans_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        if request.method == "POST":
            return self.act(request)
        return self.listing(request)

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        site = self.model_admin.admin_site
        return {**site.each_context(request), "title": title, "opts": self.model_admin.model._meta, **extra}

    def _say(self, request: HttpRequest, text: str, level: int = messages.ERROR) -> None:
        self.model_admin.message_user(request, text, level)

    # -- the list ------------------------------------------------------------------------------

    def listing(self, request: HttpRequest) -> HttpResponse:
        """Show one page of the tier's orphans older than the grace period, under the prefix filter."""
        tier = request.GET.get("tier") or StorageTier.HOT.value
        if tier not in StorageTier.__members__:
            tier = StorageTier.HOT.value
        prefix = request.GET.get("prefix") or None
        config = _config(request.GET.get("config"))
        try:
            page = max(1, int(request.GET.get("page") or 1))
        except ValueError:  # "abc", or digits past Python's int limit: a link gone bad, show the first page
            page = 1
        found = self._first_orphans(StorageTier(tier), prefix, page * ORPHANS_PER_PAGE + 1, config)
        start = (page - 1) * ORPHANS_PER_PAGE
        layout = get_settings(config).layout.tier(StorageTier(tier))
        context = self._context(
            request,
            _("Orphan objects"),
            orphans=found[start : start + ORPHANS_PER_PAGE],
            tier=tier,
            tiers=[t.value for t in StorageTier],
            prefix=prefix or "",
            page=page,
            has_next=len(found) > start + ORPHANS_PER_PAGE,
            grace=human_duration(get_file_manager(config).config.advanced.orphan_grace_period),
            config=config,
            config_query=_also(config),
            configs=config_names(),
            bucket=layout.bucket,
            prefix_placeholder=_("%(public)s/… or %(private)s/…")
            % {"public": layout.public_prefix, "private": layout.private_prefix},
        )
        return TemplateResponse(request, "admin/django_s3strata/orphans.html", context)

    def _first_orphans(self, tier: StorageTier, prefix: str | None, wanted: int, config: str = DEFAULT) -> list[OrphanObject]:
        """Return up to ``wanted`` orphans of ``config``'s ``tier`` the page may act on, stopping the listing there."""
        resolved = get_settings(config).layout.tier(tier)
        found: list[OrphanObject] = []

        def visit(outcome: OrphanOutcome) -> None:
            if not _inside_prefixes(resolved, outcome.orphan.key):
                return  # e.g. "public/../x": listed under a prefix, but the page would refuse to act on it
            found.append(outcome.orphan)
            if len(found) >= wanted:
                raise _PageFull

        with contextlib.suppress(_PageFull):
            get_file_manager(config).sync.sweep_orphans(OrphanPolicy("report", prefix=prefix, tier=tier), visit)
        return found

    # -- the action ----------------------------------------------------------------------------

    def act(self, request: HttpRequest) -> HttpResponse:
        """Confirm a selection first; once confirmed, adopt or delete it (each key re-checked by the engine)."""
        action = request.POST.get("orphan_action")
        try:
            tier = parse_tier(request.POST.get("tier"))
        except InvalidOptionError as exc:
            return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
        config = _config(request.POST.get("config"))
        back = HttpResponseRedirect(reverse("admin:s3strata_physicalfile_orphans") + f"?tier={tier.value}{_also(config)}")
        posted = request.POST.getlist("key")
        if len(posted) > ORPHANS_PER_PAGE:
            self._say(request, _("Select at most %(n)d orphans at a time.") % {"n": ORPHANS_PER_PAGE})
            return back
        if action not in PAGE_ACTIONS or "confirm" not in request.POST:
            confirmation = self._confirmation(request, action, tier, posted, config)
            return back if confirmation is None else confirmation
        if not posted or not self._run(request, action, tier, posted, config):
            self._say(request, _("Select orphans and an action."), messages.WARNING)
        return back

    def _confirmation(
        self, request: HttpRequest, action: str | None, tier: StorageTier, posted: list[str], config: str = DEFAULT
    ) -> HttpResponse | None:
        """Return the confirmation page for the keys inside the tier's prefixes; None (and a warning) if none."""
        resolved = get_settings(config).layout.tier(tier)
        keys: list[str] = []
        for key in dict.fromkeys(posted):
            if _inside_prefixes(resolved, key):
                keys.append(key)
            else:  # never acted on: the page only lists keys under the prefixes, so this was forged or stale
                self._say(request, _refusal(key, tier, config))
        if action not in PAGE_ACTIONS or not keys:
            self._say(request, _("Select orphans and an action."), messages.WARNING)
            return None
        title = _("Delete orphan objects") if action == "delete" else _("Adopt orphan objects")
        context = self._context(
            request, title, keys=keys, tier=tier.value, orphan_action=action, config=config, config_query=_also(config)
        )
        return TemplateResponse(request, "admin/django_s3strata/orphans_confirm.html", context)

    def _run(self, request: HttpRequest, action: str, tier: StorageTier, keys: list[str], config: str = DEFAULT) -> bool:
        """Adopt or delete ``keys`` through the engine and report each outcome; False when every key was refused."""
        outcomes: Counter[str] = Counter()

        def report(outcome: OrphanOutcome) -> None:
            outcomes[outcome.action] += 1
            key = outcome.orphan.key
            if outcome.action == "refused":
                self._say(request, _refusal(key, tier, config))
            elif outcome.action == "skipped":  # gone, too young, a row points at it, or another writer holds it
                self._say(request, _("%(key)s is no longer an orphan old enough to %(action)s.") % {"key": key, "action": action})
            elif outcome.action == "failed":
                self._say(request, _("%(key)s failed: %(error)s") % {"key": key, "error": outcome.error})

        # No grace period given: the engine applies ORPHAN_GRACE_PERIOD, as the list does.
        get_file_manager(config).sync.sweep_orphan_keys(OrphanPolicy(action), tier, keys, report)
        done = outcomes["adopted"] + outcomes["deleted"]
        if done:
            verb = _("deleted") if action == "delete" else _("adopted")
            self._say(
                request,
                ngettext("%(n)d orphan %(verb)s.", "%(n)d orphans %(verb)s.", done) % {"n": done, "verb": verb},
                messages.SUCCESS,
            )
        return outcomes.total() > outcomes["refused"]
