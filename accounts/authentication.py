"""API-key authentication for the DRF endpoints: the key names the organisation."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
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


class PaymentRequired(exceptions.APIException):
    status_code = 402
    default_detail = "This organisation has no active subscription: subscribe on the Billing page to use the read API."
    default_code = "payment_required"


class HasReadKey(HasApiKey):
    """Read API: a read-scope key of an active org. Ingest key → 403, lapsed subscription → 402."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if not request.auth.can_read:
            raise exceptions.PermissionDenied("This API key has the 'ingest' scope; the read API needs a 'read' key.")
        if not request.auth.org.is_active:
            raise PaymentRequired()
        return True


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the API key to the OpenAPI schema (Swagger UI's "Authorize" button)."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "llmo_…",
                "description": "An LLMObserve API key. `X-LLMObserve-API-Key: llmo_…` is accepted too."}
