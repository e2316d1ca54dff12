"""GET /v1/insights (DESIGN §4b): the org's insights, newest first, for a read-scope key."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ..api import ReadView
from ..models import Insight
from . import selectors


class InsightsView(ReadView):
    @extend_schema(summary="Insights: spikes, token bloat, retry loops, model choice, spending cap", parameters=[
        OpenApiParameter("status", str, enum=list(Insight.Status.values), description="Default open."),
        OpenApiParameter("cursor", str), OpenApiParameter("limit", int)], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        status = self.choice(request, "status", Insight.Status.values, Insight.Status.OPEN)
        params = request.query_params
        try:
            limit = min(max(int(params.get("limit", 50)), 1), 200)
            after_id = int(params["cursor"]) if params.get("cursor") else None
        except ValueError:
            raise ValidationError({"cursor": "limit and cursor must be integers"}) from None
        rows, next_after = selectors.insights_page(org=request.auth.org, status=status, after_id=after_id, limit=limit)
        next_url = None
        if next_after is not None:
            query = params.copy()
            query["cursor"] = str(next_after)
            next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"results": [selectors.insight_as_api(i) for i in rows], "next": next_url})
