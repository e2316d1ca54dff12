"""Site-wide middleware: response headers that depend on who is signed in, and the ingest endpoints' short path."""

from __future__ import annotations

from django.template.response import SimpleTemplateResponse
from django.urls import resolve, reverse
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


# What an API answer needs instead of the pages' policy: nothing may load in it or frame it.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"
INGEST_URL_NAMES = ("events-ingest", "events-ingest-alias", "otlp-traces")


class IngestFastPathMiddleware:
    """The ingest endpoints skip the browser middleware below this one.

    SDKs and OTLP exporters post there with an API key, many times a second: no session, cookie, CSRF token,
    message, htmx header or allauth state applies, yet those middleware cost 12–14% of such a request's CPU
    (bench/request_fixed_cost.py). Placed after SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer
    policy), it calls these exact paths' views itself, gives their answers the API's policy instead of the
    pages' CSP, and their length as CommonMiddleware would. Every other path goes down the whole chain."""

    def __init__(self, get_response):
        self.get_response = get_response
        # path → its ResolverMatch, resolved once: these paths take no arguments, so every request's match is the same
        self.matches = {path: resolve(path) for path in map(reverse, INGEST_URL_NAMES)}

    def __call__(self, request):
        match = self.matches.get(request.path_info)
        if match is None:
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if isinstance(response, SimpleTemplateResponse):  # DRF's Response, rendered as Django's handler would
            response = response.render()
        response["Content-Security-Policy"] = API_CONTENT_SECURITY_POLICY
        response["X-Frame-Options"] = "DENY"
        response["Content-Length"] = str(len(response.content))
        return response
