"""Bad query parameters in Django's own admin views are a 400, not a 500."""

from __future__ import annotations

import logging

from django.http import HttpResponseBadRequest

log = logging.getLogger(__name__)


class AdminBadParametersMiddleware:
    """Django's admin evaluates some request parameters only while it renders: a year filter
    beyond 9999 (`?created_at__year=99999`) or a non-numeric id in a bulk action raise ValueError
    (or LookupError) from inside Django. Under /admin/ they are answered as a bad request and
    logged; everywhere else they stay errors."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith("/admin/") or not isinstance(
            exception, (ValueError, LookupError)
        ):
            return None
        log.warning("admin request refused: %s %s: %r", request.method, request.path, exception)
        return HttpResponseBadRequest(
            "The admin could not use this request's parameters. Go back and try other values."
        )
