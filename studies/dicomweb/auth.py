"""Who is calling /dicom-web/: a browser session, a bearer token, or HTTP Basic.

DICOMweb clients rarely speak anything but Basic or a bearer token, so these
views authenticate by hand instead of through DRF. Anonymous callers get 401
with a challenge for both schemes.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from hospitals.authentication import token_from_header, user_for_token
from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent

CHALLENGE = 'Basic realm="dicom-web", Bearer realm="dicom-web"'
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def unauthorized(reason: str) -> HttpResponse:
    response = JsonResponse({"error": reason}, status=401)
    response["WWW-Authenticate"] = CHALLENGE
    return response


def _user_from_header(request: HttpRequest) -> tuple[Any, str | None]:
    """Return (user, error). ``user`` is None when the header names no valid user."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None, None
    scheme, _sep, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, "malformed Basic credentials"
        username, sep, password = decoded.partition(":")
        if not sep:
            return None, "malformed Basic credentials"
        user = authenticate(request, username=username, password=password)
        if user is None:
            audit(
                action="auth.login_failed",
                outcome=AuditEvent.Outcome.DENIED,
                request=request,
                detail={"via": "dicom-web basic"},
            )
            return None, "invalid username or password"
        return user, None
    token = token_from_header(header.encode("latin-1", "replace"))
    if token is None:
        return None, "unsupported Authorization scheme (use Basic or Bearer)"
    found = user_for_token(token)
    if found is None:
        return None, "invalid or revoked token"
    # The token object, as DRF's ``request.auth``: an edge's names its institution.
    request.auth = found[1]  # type: ignore[attr-defined]
    return found[0], None


def dicomweb_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate the caller (401 otherwise) and check CSRF for session writes."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.META.get("HTTP_AUTHORIZATION"):
            user, error = _user_from_header(request)
            if user is None:
                return unauthorized(error or "authentication required")
            request.user = user
        elif request.user.is_authenticated:
            if request.method not in SAFE_METHODS:
                # A browser session writing: the same CSRF rule as every page.
                rejected = CsrfViewMiddleware(lambda r: HttpResponse()).process_view(
                    request, view, (), {}
                )
                if rejected is not None:
                    return rejected
        else:
            return unauthorized("authentication required")
        if not request.user.is_active:
            return unauthorized("account disabled")
        return view(request, *args, **kwargs)

    return wrapper
