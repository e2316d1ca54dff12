"""API-key authentication for the DRF endpoints: the key names the organisation."""

from __future__ import annotations

from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication

from .models import ApiKey
from .selectors import api_key_get_active
from .services import api_key_touch


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer llmo_…` or `X-LLMObserve-API-Key: llmo_…`. Sets request.auth to the ApiKey."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = request.headers.get("X-LLMObserve-API-Key", "").strip()
        header = request.headers.get("Authorization", "")
        if not raw and header:
            parts = header.split()
            if len(parts) != 2 or parts[0].lower() != "bearer":
                raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer llmo_…'.")
            raw = parts[1]
        if not raw:
            return None
        key = api_key_get_active(raw_key=raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        api_key_touch(api_key=key)
        request.org = key.org
        return (None, key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="llmobserve"'


class HasApiKey(permissions.BasePermission):
    message = "An API key is required: send 'Authorization: Bearer llmo_…'."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)


class HasReadKey(HasApiKey):
    """Read API: a read-scope key. An ingest key is refused with 403 and a clear reason."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if not request.auth.can_read:
            raise exceptions.PermissionDenied("This API key has the 'ingest' scope; the read API needs a 'read' key.")
        return True
