"""DRF's token authentication, with its one query prepared once (labeling/prepared.py): every
annotator API call starts here, and compiling the query cost more than running it."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling.prepared import TEXT, PreparedInstances

_TOKEN_WITH_USER = PreparedInstances(
    lambda key: Token.objects.filter(key=key)[:1], related=("user",), key=TEXT
)


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, answered as DRF answers it (same errors, same checks)."""

    def authenticate_credentials(self, key):
        token = _TOKEN_WITH_USER.first(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)
