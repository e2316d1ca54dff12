"""POST /v1/ai-instrument (alias /api/ai-instrument): labelling suggestions for one Python file."""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .services import CodeSyntaxError, InstrumentRateLimited, code_instrument, rate_limit_org

# JSON escaping can inflate code several-fold; anything beyond this is rejected before parsing.
_MAX_BODY_FACTOR = 8
MAX_FILE_PATH = 500
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "Request body too large."
    default_code = "payload_too_large"


_SUGGESTION_FIELDS = {
    "type": serializers.ChoiceField(choices=["decorator", "section"]),
    "kind": serializers.ChoiceField(choices=["agent", "tool", "step"]),
    "line_number": serializers.IntegerField(help_text="The def line."),
    "function_name": serializers.CharField(help_text="name, or Class.method"),
    "suggested_label": serializers.CharField(help_text="lower_snake_case, no kind prefix"),
    "reason": serializers.CharField(),
}


class AiInstrumentView(APIView):
    """Any active API key of the org (ingest or read scope). The org comes from the key."""

    @extend_schema(
        operation_id="ai_instrument",
        summary="Suggest llmobserve decorators for one Python file",
        request=inline_serializer("AiInstrumentRequest", fields={
            "code": serializers.CharField(help_text="The file's source, at most 200 KB."),
            "file_path": serializers.CharField(max_length=MAX_FILE_PATH),
        }),
        responses={
            200: inline_serializer("AiInstrumentResponse", fields={
                "engine": serializers.ChoiceField(choices=["claude", "static"]),
                "suggestions": inline_serializer("AiInstrumentSuggestion", fields=_SUGGESTION_FIELDS, many=True),
                "dropped": serializers.IntegerField(help_text="Suggestions that failed validation."),
            }),
            400: OpenApiResponse(description="Missing fields, or code that does not parse (with its line)."),
            401: OpenApiResponse(description="No or invalid API key."),
            413: OpenApiResponse(description="Code over 200 KB."),
            429: OpenApiResponse(description="Per-org rate limit; see Retry-After."),
        },
    )
    def post(self, request: Request) -> Response:
        # The per-org limit comes first: over it, the body is neither read nor parsed (a flood of huge or
        # broken bodies costs a cache increment each, not a JSON and an AST parse).
        try:
            rate_limit_org(org=request.auth.org)
        except InstrumentRateLimited as exc:
            raise exceptions.Throttled(
                wait=exc.retry_after,
                detail=(f"Auto-instrument is limited to {settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG} files per "
                        f"minute per organisation; retry in {exc.retry_after} s."),
            ) from exc
        max_bytes = settings.LLMOBSERVE_INSTRUMENT_MAX_CODE_BYTES
        try:
            content_length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            content_length = 0
        if content_length > max_bytes * _MAX_BODY_FACTOR:
            raise PayloadTooLarge(
                f"The request body is {content_length} bytes; code may be at most {max_bytes // 1024} KB.")

        try:
            data = request.data
        except RecursionError:  # the JSON parser recursed past Python's limit
            raise exceptions.ParseError("JSON is nested too deeply.") from None
        if not isinstance(data, dict):
            raise exceptions.ParseError('Send a JSON object: {"code": "...", "file_path": "agent.py"}.')
        code, file_path = data.get("code"), data.get("file_path")
        errors = {}
        if not isinstance(code, str):
            errors["code"] = "This field is required: the file's source as a string."
        if not isinstance(file_path, str):
            errors["file_path"] = "This field is required: the file's path as a string."
        elif len(file_path) > MAX_FILE_PATH:
            errors["file_path"] = f"At most {MAX_FILE_PATH} characters."
        for name, value in (("code", code), ("file_path", file_path)):
            if isinstance(value, str) and name not in errors and _LONE_SURROGATE.search(value):
                # JSON can escape one ("\ud800"); no UTF-8 file or answer can hold it.
                errors[name] = "Contains a lone surrogate (not valid Unicode)."
        if errors or not isinstance(code, str) or not isinstance(file_path, str):
            raise exceptions.ValidationError(errors)
        size = len(code.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise PayloadTooLarge(f"{file_path} is {size // 1024} KB; the limit is {max_bytes // 1024} KB per file.")

        try:
            result = code_instrument(org=request.auth.org, code=code, file_path=file_path)
        except CodeSyntaxError as exc:
            return Response({"detail": str(exc), "line": exc.line, "column": exc.column}, status=400)
        return Response({
            "engine": result.engine,
            "suggestions": [s.as_dict() for s in result.suggestions],
            "dropped": result.dropped,
        })


@extend_schema(exclude=True)
class AiInstrumentAliasView(AiInstrumentView):
    """/api/ai-instrument: the same endpoint, documented once under /v1/."""
