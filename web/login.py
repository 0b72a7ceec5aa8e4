"""Login with a rate limit: after too many failures for one username or one address, wait."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache


def _keys(request, username: str) -> list[str]:
    address = request.META.get("REMOTE_ADDR", "")
    user_key = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [f"login-fail:user:{user_key}", f"login-fail:addr:{address}"]


def is_locked_out(request, username: str) -> bool:
    limit = settings.PAGEWISE_LOGIN_FAILURES
    user_key, address_key = _keys(request, username)
    # An address may be shared (an office behind one NAT): it gets more tries than one username.
    return (cache.get(user_key) or 0) >= limit or (cache.get(address_key) or 0) >= 4 * limit


def record_failure(request, username: str) -> None:
    window = settings.PAGEWISE_LOGIN_WINDOW_SECONDS
    for key in _keys(request, username):
        cache.add(key, 0, window)  # the window starts at the first failure
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, window)


class RateLimitedLoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if is_locked_out(request, username):
            form = self.get_form()
            form.add_error(None, "Too many failed logins. Please wait a few minutes and try again.")
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        if self.request.method == "POST":
            record_failure(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)
