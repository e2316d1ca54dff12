"""The read API (DESIGN §4b): thin views over analytics.selectors, authenticated by a read-scope key."""

from __future__ import annotations

import csv
import io
import json
from datetime import timezone as dt_timezone

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasReadKey
from ingestion.api import ApiKeyThrottle
from ingestion.selectors import price_lookup

from . import performance, selectors
from .forecast import forecast_get
from .csv_safety import csv_safe_row
from .windows import WindowError, window_from_params


class ReadThrottle(ApiKeyThrottle):
    scope = "read"
    setting = "LLMOBSERVE_READ_RATE"


WINDOW_PARAMS = [
    OpenApiParameter("window", str, enum=["24h", "7d", "30d"], description="Ends now; default 24h."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Custom window start (rounded down to the hour)."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Custom window end (rounded up to the hour)."),
]
FILTER_PARAMS = [
    OpenApiParameter("customer_id", str), OpenApiParameter("section", str, description="Prefix of the section path."),
    OpenApiParameter("status", str, enum=["ok", "error", "rate_limited", "timeout", "cancelled"]),
    OpenApiParameter("model", str), OpenApiParameter("agent", str, description='First path segment, "agent:x".'),
]


class ReadView(APIView):
    permission_classes = [HasReadKey]
    throttle_classes = [ReadThrottle]

    def window(self, request):
        try:
            return window_from_params(request.query_params)
        except WindowError as exc:
            raise ValidationError({"window": str(exc)}) from None

    def choice(self, request, name: str, choices, default: str) -> str:
        value = request.query_params.get(name) or default
        if value not in choices:
            raise ValidationError({name: f"must be one of {', '.join(choices)}"})
        return value

    def filters(self, request) -> selectors.RunFilters:
        q = request.query_params
        values = {name: q.get(name, "") for name in ("customer_id", "section", "status", "model", "agent")}
        bad = {name: "must not contain U+0000 (no stored label can)" for name, v in values.items() if "\x00" in v}
        if bad:
            raise ValidationError(bad)
        return selectors.RunFilters(**values)


class RunsView(ReadView):
    @extend_schema(operation_id="runs_list", summary="Runs, newest first", parameters=WINDOW_PARAMS + FILTER_PARAMS + [
        OpenApiParameter("cursor", str), OpenApiParameter("limit", int)], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        try:
            limit = min(max(int(request.query_params.get("limit", 50)), 1), 500)
        except ValueError:
            raise ValidationError({"limit": "must be an integer"}) from None
        runs, cursor = selectors.runs_list(org=request.auth.org, window=self.window(request),
                                           filters=self.filters(request), cursor=request.query_params.get("cursor", ""),
                                           limit=limit)
        next_url = None
        if cursor:
            params = request.query_params.copy()
            params["cursor"] = cursor
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"results": [selectors.run_as_api(r) for r in runs], "next": next_url})


class RunDetailView(ReadView):
    @extend_schema(operation_id="runs_retrieve", summary="One run: its calls and section tree", responses={200: OpenApiTypes.OBJECT})
    def get(self, request, run_id: str):
        org = request.auth.org
        run = selectors.run_get(org=org, run_id=run_id)
        events = selectors.run_events(org=org, run_id=run_id)
        body = selectors.run_as_api(run)
        body["calls_past_retention"] = selectors.run_past_retention(org=org, run=run)
        body["events"] = selectors.run_events_priced(org=request.auth.org, events=events)
        body["sections"] = [node.as_api() for node in selectors.section_tree(events)]
        return Response(body)


class SummaryView(ReadView):
    @extend_schema(operation_id="stats_summary", summary="Cost summary of a window vs the previous one", parameters=WINDOW_PARAMS,
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(selectors.cost_summary(org=request.auth.org, window=self.window(request)).as_api())


class BreakdownView(ReadView):
    @extend_schema(operation_id="stats_breakdown", summary="Cost by agent, section, provider, model or customer", parameters=WINDOW_PARAMS + [
        OpenApiParameter("by", str, enum=list(selectors.DIMENSIONS), required=True)],
        responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        by = self.choice(request, "by", selectors.DIMENSIONS, "agent")
        rows = selectors.cost_breakdown(org=request.auth.org, by=by, window=self.window(request))
        return Response({"results": [r.as_api() for r in rows]})


class TimeseriesView(ReadView):
    @extend_schema(operation_id="stats_timeseries", summary="Cost, calls, latency percentiles or error rate over time",
                   parameters=WINDOW_PARAMS + [
        OpenApiParameter("interval", str, enum=["day", "hour"]),
        OpenApiParameter("by", str, enum=["provider", "model", "agent"]),
        OpenApiParameter("metric", str, enum=list(performance.METRICS),
                         description="cost (USD strings, the default), calls, latency_p50/p95/p99 (ms) or "
                                     "error_rate (errors / calls)")], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        interval = self.choice(request, "interval", ("day", "hour"), "day")
        by = self.choice(request, "by", ("provider", "model", "agent"), "provider")
        metric = self.choice(request, "metric", performance.METRICS, "cost")
        window = self.window(request)
        if metric == "cost":
            buckets = selectors.cost_timeseries(org=request.auth.org, window=window, interval=interval, by=by)
        else:
            buckets = performance.metric_timeseries(org=request.auth.org, window=window, metric=metric,
                                                    interval=interval, by=by)
        return Response({"metric": metric, "buckets": buckets})


PERF_PARAMS = WINDOW_PARAMS + [
    OpenApiParameter("by", str, enum=list(performance.PERF_DIMENSIONS),
                     description="Default: model. endpoint: the URL path of the call, per provider."),
]


class PerfView(ReadView):
    def perf_args(self, request) -> dict:
        return {"org": request.auth.org, "by": self.choice(request, "by", performance.PERF_DIMENSIONS, "model"),
                "window": self.window(request)}


class LatencyView(PerfView):
    @extend_schema(operation_id="stats_latency", summary="Latency and time-to-first-token percentiles per key",
                   parameters=PERF_PARAMS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        args = self.perf_args(request)
        return Response({"by": args["by"], "results": performance.latency_breakdown(**args)})


class ErrorsView(PerfView):
    @extend_schema(operation_id="stats_errors", summary="Errors per key: status mix, HTTP codes, failed calls' cost",
                   parameters=PERF_PARAMS, responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        args = self.perf_args(request)
        return Response({"by": args["by"], "results": performance.errors_breakdown(**args)})


class ForecastView(ReadView):
    @extend_schema(operation_id="stats_forecast", summary="This month's projected spend, its range and the cap day",
                   description="Month-to-date + the expected spend of each day left (docs/forecast.md); `method` "
                               "states the model in one sentence.", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(forecast_get(org=request.auth.org, now=timezone.now()).as_api())


PRICE_PARAMS = [
    OpenApiParameter("provider", str, required=True, description="As the call reports it (openai, azure_openai, bedrock…)."),
    OpenApiParameter("model", str, required=True),
    OpenApiParameter("at", OpenApiTypes.DATETIME, description="The call's time (ISO 8601, UTC if no offset); default now."),
    OpenApiParameter("service_tier", str, description="The served tier: flex, priority, default, fast…"),
    OpenApiParameter("processing", str, enum=["batch"]),
    OpenApiParameter("speed", str),
]


class PricesView(ReadView):
    @extend_schema(
        operation_id="prices_lookup", summary="Which price would price such a call",
        description="The price row (your organisation's overrides first, then the global table, as ingestion), the "
                    "time window / variant in force, its unit prices (USD as decimal strings per the registry's "
                    "unit: `input_mtok` is per 1M tokens, `web_searches_kcount` per 1,000 searches), the integer "
                    "pico-USD per token of the token units, tiers, source (registry / admin / override) and date, "
                    "and your negotiated discount then (docs/pricing.md § Looking up a price). 404 when no price "
                    "matches.", parameters=PRICE_PARAMS, responses={200: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def get(self, request):
        q = request.query_params
        errors = {name: "required" for name in ("provider", "model") if not q.get(name, "").strip()}
        errors.update({name: "must not contain U+0000" for name in ("provider", "model", "service_tier",
                                                                    "processing", "speed") if "\x00" in q.get(name, "")})
        at = timezone.now()
        if q.get("at"):
            parsed = None
            try:
                parsed = parse_datetime(q["at"].strip())
            except ValueError:
                pass
            if parsed is None:
                errors["at"] = "must be an ISO 8601 date-time, e.g. 2026-11-29T03:00:00Z"
            else:
                at = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)
                at = at.astimezone(dt_timezone.utc)
        if errors:
            raise ValidationError(errors)
        context = {name: q[name].strip() for name in ("service_tier", "processing", "speed") if q.get(name, "").strip()}
        provider, model = q["provider"].strip(), q["model"].strip()
        found = price_lookup(org=request.auth.org, provider=provider, model=model, at=at, context=context or None)
        if found is None:
            return Response({"detail": f"No price matches provider {provider!r}, model {model!r} at "
                                       f"{at.isoformat().replace('+00:00', 'Z')}: such a call would be unpriced."},
                            status=404)
        return Response(found)


# Numbers in the export: never rewritten by the CSV formula guard (a negative number is not a formula).
EXPORT_NUMERIC_COLUMNS = frozenset({"input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                                    "reasoning_tokens", "latency_ms", "ttft_ms", "http_status", "cost_usd",
                                    "billed_cost_usd", "reported_cost_usd"})


def export_response(*, org, window, filters, fmt: str) -> StreamingHttpResponse:
    """Stream the events as CSV (wire fields in order, then cost_usd) or one JSON array."""
    rows = selectors.events_iter(org=org, window=window, filters=filters)
    columns = [f for f in selectors.WIRE_FIELDS if f != "cost_usd"] + [*selectors.PRICED_FIELDS, "cost_usd"]
    stamp = window.start.strftime("%Y%m%d%H")
    if fmt == "csv":
        def generate():
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(columns)
            for n, row in enumerate(rows, 1):
                for name in ("metadata", "usage", "price"):
                    row[name] = json.dumps(row[name], separators=(",", ":"), ensure_ascii=False) if row[name] else ""
                writer.writerow(csv_safe_row((row[c] for c in columns), columns=columns, numeric=EXPORT_NUMERIC_COLUMNS))
                if n % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        response = StreamingHttpResponse(generate(), content_type="text/csv; charset=utf-8")
    else:
        def generate():
            yield "["
            for n, row in enumerate(rows):
                yield ("," if n else "") + json.dumps({c: row[c] for c in columns}, separators=(",", ":"))
            yield "]"

        response = StreamingHttpResponse(generate(), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="llmobserve-events-{stamp}.{fmt}"'
    return response


class ExportView(ReadView):
    @extend_schema(operation_id="events_export", summary="Export events (streamed)", parameters=WINDOW_PARAMS + FILTER_PARAMS + [
        OpenApiParameter("format", str, enum=["csv", "json"])], responses={200: OpenApiTypes.BINARY})
    def get(self, request):
        fmt = self.choice(request, "format", ("csv", "json"), "csv")
        return export_response(org=request.auth.org, window=self.window(request), filters=self.filters(request),
                               fmt=fmt)


