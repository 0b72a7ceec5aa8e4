"""One error shape for the API: {"message": ..., "extra": {"fields": ...}}."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.errors import PagewiseError


def error_response(message: str, fields=None, *, status_code: int = 400) -> Response:
    return Response({"message": message, "extra": {"fields": fields or {}}}, status=status_code)


# A request that could not get the database's write lock in time is answered 503 with this
# Retry-After, never a 500: the client (the judging page, loadtest) asks again.
RETRY_AFTER_SECONDS = 2
BUSY_MESSAGE = "The database is busy right now; nothing was stored. Try again in a moment."
# PostgreSQL rolls back one side of a deadlock, or of a serialization conflict: the request can
# simply be sent again (a submit is idempotent on its client_uuid).
_BUSY_MARKERS = (
    "database is locked",
    "database table is locked",
    "lock timeout",
    "deadlock detected",
    "could not serialize access",
)


def is_database_busy(exc: BaseException) -> bool:
    """SQLite's busy timeout ran out (or PostgreSQL's lock_timeout, or it broke a deadlock): a
    retry will do."""
    return isinstance(exc, OperationalError) and any(m in str(exc).lower() for m in _BUSY_MARKERS)


def busy_response() -> Response:
    response = error_response(BUSY_MESSAGE, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def exception_handler(exc, context):
    if is_database_busy(exc):
        return busy_response()
    if isinstance(exc, PagewiseError):
        return error_response(exc.message, exc.fields, status_code=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return error_response("Invalid input.", fields)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"message": "Invalid input.", "extra": {"fields": detail}}
    else:
        message = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"message": str(message), "extra": {"fields": {}}}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        response.data["extra"]["retry_after"] = getattr(exc, "wait", None)
    return response
