"""Site-wide response headers that depend on who is signed in."""

from __future__ import annotations

from django.utils.cache import add_never_cache_headers


class NoStoreForSignedInMiddleware:
    """`Cache-Control: no-store` (never cached, not even in the browser's history) on every response to a
    signed-in session: pages show API keys once, costs, members, exports; a shared or back-button cache
    must not keep them. API-key requests carry no session and are left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private; max-age=0; Expires
        return response
