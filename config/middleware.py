"""Bad query parameters in Django's own admin views are a 400, not a 500."""

from __future__ import annotations

import logging

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse

from web.api_errors import BUSY_MESSAGE, RETRY_AFTER_SECONDS, is_database_busy

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


class DatabaseBusyMiddleware:
    """A page or API view that could not get the database's write lock in time (SQLite's busy
    timeout) answers 503 with Retry-After, in JSON for API clients: never a 500, never the
    debug page. The DRF views answer the same through web.api_errors."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_database_busy(exception):
            return None
        log.warning("database busy: %s %s: %s", request.method, request.path, exception)
        wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
        if wants_json:
            response = JsonResponse({"message": BUSY_MESSAGE, "extra": {"fields": {}}}, status=503)
        else:
            response = HttpResponse(BUSY_MESSAGE, status=503, content_type="text/plain")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
