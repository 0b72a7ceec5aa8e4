"""DRF's token authentication, with its one query prepared once (labeling/prepared.py): every
annotator API call starts here, and compiling the query cost more than running it. A view can have
its own first read sent with the token's, in the same round trip (`read_with_token`)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling.prepared import TEXT, PreparedInstances, pipelined

_TOKEN_WITH_USER = PreparedInstances(
    lambda key: Token.objects.filter(key=key)[:1], related=("user",), key=TEXT
)


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, answered as DRF answers it (same errors, same checks).

    A view with a `read_with_token(key)` method has it send its first read (Prepared.send) in the
    token's round trip, the read keyed by the token rather than by its user (whom only the token's
    row names); what reads its rows is handed to the view as `read_with_token_rows` once the
    token has passed every check, and never otherwise. The read must write nothing."""

    def authenticate(self, request):
        self.view = (getattr(request, "parser_context", None) or {}).get("view")
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        send_view_read = getattr(getattr(self, "view", None), "read_with_token", None)
        with pipelined():
            read_token = _TOKEN_WITH_USER.send(key=key)
            read_view_rows = send_view_read(key) if send_view_read else None
        token = next(iter(read_token()), None)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if read_view_rows is not None:
            self.view.read_with_token_rows = read_view_rows
        return (token.user, token)
