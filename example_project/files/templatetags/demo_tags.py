"""Template filters of the example site."""

from __future__ import annotations

from django import template

register = template.Library()

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


@register.filter
def binary_size(size: int | None) -> str:
    """Return ``size`` bytes in binary units, as the page's script writes them: "20.0 MiB", "512 bytes"."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} byte{'' if size == 1 else 's'}"
    value = float(size)
    for unit in _UNITS:  # noqa: B007 - the last unit is the one used
        value /= 1024
        if value < 1024:
            break
    return f"{value:.1f} {unit}"
