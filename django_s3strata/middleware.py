"""DirectUploadMiddleware: lets direct-upload form fields accept only the submitter's own uploads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .uploads import requester

__all__ = ["DirectUploadMiddleware"]


class DirectUploadMiddleware:
    """Name the request's user (or session) to the form fields that check direct-upload refs.

    Put it after ``AuthenticationMiddleware``. A form field sees no request; without this, a
    ``DirectUploadField`` checks a ref's policy but cannot check who uploaded the file. Nothing is
    looked up unless a form checks a ref.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        with requester(request):
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        with requester(request):
            return await self.get_response(request)
